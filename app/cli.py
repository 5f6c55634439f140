"""`chatapi serve`, `chatapi create-client NAME` and `chatapi migrate`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from aiohttp import web

from app import config, logscrub
from app.auth import Principal
from app.services.clients import ClientService
from storage import SchemaMismatch, StorageError, create_storage

MIN_ADMIN_KEY_LENGTH = 24

log = logging.getLogger("chatapi")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatapi", description="ChatAPI real-time chat server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    config.add_flags(serve)
    create = commands.add_parser("create-client", help="create a client and print its secrets")
    create.add_argument("name")
    create.add_argument("--description", default=None)
    config.add_flags(create)
    migrate = commands.add_parser(
        "migrate", help="bring the database's schema up to date, including the steps "
                        "`serve` won't apply while other nodes run")
    config.add_flags(migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = config.from_args(args)
    except ValueError as exc:
        print(f"chatapi: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logscrub.install()
    if args.command == "create-client":
        return asyncio.run(_create_client(settings, args.name, args.description))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    weak = weak_admin_key(settings.admin_key)
    if weak:
        print(f"chatapi: {weak}", file=sys.stderr)
        return 2
    return _serve(settings)


def weak_admin_key(key: str) -> str | None:
    """Why the admin key is too weak to serve with, or None. Empty means no admin key."""
    if key and len(key) < MIN_ADMIN_KEY_LENGTH:
        return (f"CHATAPI_ADMIN_KEY is {len(key)} characters; it must be at least "
                f"{MIN_ADMIN_KEY_LENGTH} (try: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'), or leave it unset")
    return None


def _serve(settings: config.Settings) -> int:
    from app.main import create_app

    app = create_app(settings)
    stopper = Stopper(settings.drain_seconds)
    app.on_startup.append(stopper.install)
    _tune_gc()
    try:
        web.run_app(app, host=settings.host, port=settings.port,
                    shutdown_timeout=settings.drain_seconds, access_log=None,
                    print=lambda text: print(text, flush=True))
    except SchemaMismatch as exc:
        print(f"chatapi: {exc}", file=sys.stderr)
        return 1
    return 0


# after the drain, this long for the last of the clean-up before the process exits anyway
DRAIN_OVERRUN_SECONDS = 2.0


class Stopper:
    """SIGTERM / SIGINT: the first starts the drain (`drain_seconds`, then the process exits
    even if something still holds on); a second exits at once."""

    def __init__(self, drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        self.watchdog: threading.Timer | None = None

    async def install(self, app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # in place of aiohttp's own
            loop.add_signal_handler(sig, self.signalled, sig)

    def signalled(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.watchdog is not None:
            log.warning("%s again: exiting now", name)
            _exit(128 + sig)
        log.warning("%s: shutting down, draining for up to %g s (send it again to exit now)",
                    name, self.drain_seconds)
        self.watchdog = threading.Timer(self.drain_seconds + DRAIN_OVERRUN_SECONDS,
                                        self.overrun)
        self.watchdog.daemon = True
        self.watchdog.start()
        raise web.GracefulExit()

    @staticmethod
    def overrun() -> None:
        log.warning("shutdown overran the drain: exiting now")
        _exit(1)


def _exit(code: int) -> None:
    logging.shutdown()  # flush the log first
    sys.stdout.flush()
    os._exit(code)


def _tune_gc() -> None:
    """What exists after start-up (modules, routes, schemas: most of the heap) is frozen
    out of the collector's full passes, which then walk only live connections' objects."""
    gc.collect()
    gc.freeze()


async def _migrate(settings: config.Settings) -> int:
    storage = create_storage(settings.database_url)
    try:
        await storage.open(migrate=True)
    except StorageError as exc:
        await storage.close()
        print(f"chatapi: {exc}", file=sys.stderr)
        return 1
    await storage.close()
    for change in storage.migrated:
        print(change)
    print("schema up to date")
    return 0


async def _create_client(settings: config.Settings, name: str, description: str | None) -> int:
    storage = create_storage(settings.database_url)
    try:
        await storage.open()
    except StorageError as exc:
        await storage.close()
        print(f"chatapi: {exc}", file=sys.stderr)
        return 1
    try:
        # whoever runs the command line on the server's data acts as its administrator
        operator = Principal(kind="admin")
        client = await ClientService(storage, settings).create(operator, name, description)
    finally:
        await storage.close()
    print(f"client id:    {client['id']}")
    print(f"api key:      {client['api_key']}")
    print(f"token secret: {client['token_secret']}")
    print("Store both now: they are not shown again.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

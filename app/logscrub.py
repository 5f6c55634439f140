"""Secrets never reach the log: credential values are replaced in every record before any
handler writes it (aiohttp logs rejected request lines, `?token=…` included, at ERROR)."""

from __future__ import annotations

import logging
import re

REDACTED = "[REDACTED]"
_QUERY = re.compile(r"(?i)((?<![\w-])(?:token|key|api_key|api-key|access_token)=)[^&\s'\"\\]+")
_HEADER = re.compile(
    r"(?i)((?<![\w-])(?:authorization|x-api-key)['\"]?\s*[:=,]\s*['\"]?(?:bearer\s+)?)"
    r"[^\s'\",}\\]+")


def scrub(text: str) -> str:
    return _HEADER.sub(r"\1" + REDACTED, _QUERY.sub(r"\1" + REDACTED, text))


class ScrubSecrets(logging.Filter):
    """Rewrites a record's message and traceback text with credential values redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """On every handler of `logger` (the root by default): handler filters see records
    propagated from every logger, aiohttp's included."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
            handler.addFilter(ScrubSecrets())

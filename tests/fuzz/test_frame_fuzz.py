"""Frame fuzzer: hostile frames on authenticated raw WebSocket, Socket.IO and engine.io sessions.

Hypothesis (fixed seed, no example database) draws each frame from named pieces (random
JSON, wrong types, huge numbers, deep nesting, oversized and binary frames, unknown event
types, malformed packets). Only documented outcomes pass:

- raw `/ws/{room_id}`: `error` events with a documented code and the socket still answers
  `ping` with `pong`; a binary frame closes with 1003, a frame over the size limit with 1009;
  nothing else closes it but flow control (4004, 1013), and never 1011.
- Socket.IO: every event emitted with an ack gets one, `{status: "ok", data}` or
  `{status: "error", error: {code, message}}` with a documented code, and the connection stays.
- engine.io over a plain WebSocket: malformed Socket.IO packets never get 1011, and a
  well-formed `ping` afterwards is still acknowledged unless the session was closed cleanly.

Last, the server is still up and logged no traceback.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
import requests
import socketio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.fuzz import hostile
from tests.fuzz.conftest import HTTP_TIMEOUT, LiveServer

TIMEOUT = 5.0  # for every network await
RAW_EXAMPLES = 1000
SIO_EXAMPLES = 1000
ENGINEIO_EXAMPLES = 800
MAX_FRAME_BYTES = 65536  # the server's default `CHATAPI_WS_MAX_FRAME_BYTES`

# Strategy pieces that hit bugs being fixed on other branches; each entry names the piece
# and, as its value, the reproducer. Delete the entries once the fixes are merged.
KNOWN_BUGS_UNTIL_MERGE: dict[str, str] = {}

# `error` event codes and Socket.IO ack error codes the README documents.
DOCUMENTED_ERROR_CODES = {
    "INVALID_JSON", "UNKNOWN_TYPE", "VALIDATION_ERROR", "CONTENT_TOO_LONG",
    "INVALID_CREDENTIALS", "TOKEN_EXPIRED", "INSUFFICIENT_PERMISSIONS", "ROOM_ACCESS_DENIED",
    "UNAUTHORIZED_EDIT", "ROOM_NOT_FOUND", "MESSAGE_NOT_FOUND", "NOTIFICATION_NOT_FOUND",
    "RESOURCE_NOT_FOUND", "ALREADY_IN_ROOM", "NOT_IN_ROOM", "ROOM_INACTIVE",
    "PAYLOAD_TOO_LARGE", "RATE_LIMIT_EXCEEDED", "SERVICE_UNAVAILABLE",
}
SIO_ERROR_CODES = DOCUMENTED_ERROR_CODES | {4001, 4002, 4003, 4004}
FLOW_CONTROL_CLOSES = {4004, 1013}  # may end any connection: rate limit, slow consumer
SERVER_ERROR = 1011

RAW_TYPES = ["typing", "get_online_users", "ping", "message", "mark_read"]
SIO_EVENTS = ["join", "leave", "typing", "get_online_users", "message", "mark_read", "ping"]
FIELDS = ["content", "message_type", "meta", "client_msg_id", "seq", "is_typing", "room_id",
          "last_seq", "user_id", "sender_id", "data", "type"]
RESERVED_SIO_EVENTS = {"connect", "disconnect", "connect_error"}


def shown(value: Any) -> Any:
    """Frames and long strings shortened in Hypothesis's report (they run to megabytes)."""
    if isinstance(value, bytes):
        return hostile.Blob(value)
    return hostile.Frame(value) if isinstance(value, str) else value


async def send(ws: aiohttp.ClientWebSocketResponse, frame: str | bytes) -> None:
    """Send a frame; a socket the server is already closing is left for the reader to see."""
    try:
        if isinstance(frame, bytes):
            await asyncio.wait_for(ws.send_bytes(frame), TIMEOUT)
        else:
            await asyncio.wait_for(ws.send_str(frame), TIMEOUT)
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError: closing transport
        pass


async def send_pong(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
    """Answer a PING; one that crosses the server's close is left unanswered (aiohttp's own
    autoping raised out of `receive` then, and the close code behind it was lost)."""
    try:
        await asyncio.wait_for(ws.pong(data), TIMEOUT)
    except ConnectionResetError:
        pass


def pieces(protocol: str, table: dict[str, st.SearchStrategy[Any]]
           ) -> st.SearchStrategy[tuple[str, Any]]:
    """One of the table's pieces, tagged `protocol:name`, but those in KNOWN_BUGS_UNTIL_MERGE."""
    return st.one_of(*[strategy.map(lambda value, name=f"{protocol}:{name}": (name, shown(value)))
                       for name, strategy in table.items()
                       if f"{protocol}:{name}" not in KNOWN_BUGS_UNTIL_MERGE])


def values(protocol: str) -> st.SearchStrategy[Any]:
    """Hostile JSON values (`protocol:value-<piece>` in KNOWN_BUGS_UNTIL_MERGE)."""
    table = {f"value-{name}": piece for name, piece in hostile.VALUE_PIECES.items()}
    return pieces(protocol, table).map(lambda piece: piece[1])


@st.composite
def payloads(draw: st.DrawFn, protocol: str, room_id: str | None) -> Any:
    """An event's data: a hostile value itself, or an object with hostile fields."""
    if draw(st.booleans()):
        return draw(values(protocol))
    data = {}
    for field in draw(st.lists(st.one_of(st.sampled_from(FIELDS), hostile.text), max_size=4)):
        data[field] = draw(values(protocol))
    if room_id is not None and draw(st.booleans()):
        data["room_id"] = room_id
    return data


# -- shared state on the client loop ---------------------------------------------------------

class Tenant:
    """One tenant with a room, a user token, and the clients the fuzzers keep connected."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        client = live.new_tenant()
        self.id, self.key, self.secret = client["id"], client["api_key"], client["token_secret"]
        status, body = live.api("POST", "/rooms", self.key, {"name": "fuzz"})
        assert status == 201, body
        self.room_id = body["data"]["id"]
        self.user_token = jwt.encode(
            {"sub": "fuzz-user", "name": "Fuzz", "iss": self.id,
             "exp": int(time.time()) + 3600}, self.secret, algorithm="HS256")
        self.http: aiohttp.ClientSession | None = None

    def credentials(self) -> dict[str, dict[str, str]]:
        return {"client_key": {"token": self.key, "user_id": "fuzz-key"},
                "user_token": {"token": self.user_token}}

    async def session(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        return self.http


@pytest.fixture(scope="module")
def tenant(live: LiveServer) -> Any:
    made = Tenant(live)
    yield made
    if made.http is not None:
        live.run(made.http.close(), TIMEOUT)


def check_error_event(event: dict[str, Any]) -> None:
    data = event.get("data")
    assert isinstance(data, dict), event
    assert data.get("code") in DOCUMENTED_ERROR_CODES, event
    assert isinstance(data.get("message"), str), event


# -- raw WebSocket -----------------------------------------------------------------------------

class RawSession:
    """A raw `/ws/{room_id}` connection that reconnects after a documented close."""

    def __init__(self, tenant: Tenant, params: dict[str, str]) -> None:
        self.tenant = tenant
        self.params = params
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.close_code: int | None = None  # the code of the server's close frame

    async def reset(self) -> None:
        """Drop the connection (after a close or a failed example): the next one starts fresh."""
        if self.ws is not None and not self.ws.closed:
            await asyncio.wait_for(self.ws.close(), TIMEOUT)
        self.ws = None

    async def open(self) -> aiohttp.ClientWebSocketResponse:
        if self.ws is None or self.ws.closed:
            self.ws = None
            http = await self.tenant.session()
            url = f"{self.tenant.live.ws_base}/ws/{self.tenant.room_id}"
            self.ws = await http.ws_connect(url, params=self.params, autoping=False,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT))
            event = await self.event()
            while event is not None and event["type"] != "connection_status":
                event = await self.event()
            assert event is not None, f"closed before connection_status: {self.close_code}"
        return self.ws

    async def event(self) -> dict[str, Any] | None:
        """The next JSON event (error events checked), or None once the server closed."""
        assert self.ws is not None
        msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
        while msg.type is aiohttp.WSMsgType.PING:  # the server's heartbeat
            await send_pong(self.ws, msg.data)
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            self.close_code = msg.data if msg.type is aiohttp.WSMsgType.CLOSE else \
                self.ws.close_code
            return None
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        event = json.loads(msg.data)
        assert isinstance(event, dict) and isinstance(event.get("type"), str), event
        if event["type"] == "error":
            check_error_event(event)
        return event

    async def until_closed(self) -> int | None:
        while await self.event() is not None:
            pass
        return self.close_code


def raw_frames(room_id: str) -> st.SearchStrategy[tuple[str, str | bytes]]:
    """(piece name, frame): text frames unless the piece is `binary`."""
    event = st.builds(lambda t, d: hostile.dumps({"type": t, "data": d}),
                      st.one_of(st.sampled_from(RAW_TYPES), hostile.text),
                      payloads("raw", room_id))
    table: dict[str, st.SearchStrategy[Any]] = {
        "event": event,
        "event_without_data": st.sampled_from(RAW_TYPES).map(lambda t: json.dumps({"type": t})),
        "json_value": values("raw").map(hostile.dumps),
        "random_text": st.text(max_size=200),
        "truncated_json": event.flatmap(lambda text: st.integers(0, max(0, len(text) - 1))
                                        .map(lambda n, text=text: text[:n])),
        "huge_number_literal": st.sampled_from(RAW_TYPES).map(
            lambda t: f'{{"type": "{t}", "data": {{"seq": {hostile.HUGE_LITERAL}}}}}'),
        "deep_nesting_text": st.builds(
            lambda depth, kind: '{"type": "message", "data": {"content": "x", "meta": '
            + hostile.nested_text(depth, kind) + "}}",
            st.integers(300, 10_000), st.sampled_from(["list", "dict"])),
        "deep_frame_text": st.builds(hostile.nested_text, st.integers(300, 10_000),
                                     st.sampled_from(["list", "dict"])),
        "oversized": st.integers(MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES * 2).map(
            lambda n: '{"type": "message", "data": {"content": "' + "x" * n + '"}}'),
        "binary": st.binary(min_size=1, max_size=64),
    }
    return pieces("raw", table)


@given(data=st.data())
@settings(max_examples=RAW_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck), print_blob=False)
def test_raw_websocket_frames(live: LiveServer, tenant: Tenant,
                              raw_sessions: dict[str, RawSession], data: st.DataObject) -> None:
    who = data.draw(st.sampled_from(sorted(raw_sessions)), label="credential")
    piece, frame = data.draw(raw_frames(tenant.room_id), label="frame")
    session = raw_sessions[who]
    try:
        live.run(raw_exchange(session, piece, frame), TIMEOUT * 4)
        live.assert_no_traceback((piece, frame))
    finally:
        if session.ws is None or session.ws.closed or session.close_code is not None:
            live.run(session.reset(), TIMEOUT * 2)


@pytest.fixture(scope="module")
def raw_sessions(live: LiveServer, tenant: Tenant) -> Any:
    sessions = {name: RawSession(tenant, params)
                for name, params in tenant.credentials().items()}
    yield sessions
    for session in sessions.values():
        if session.ws is not None and not session.ws.closed:
            live.run(session.ws.close(), TIMEOUT)


def expected_close(frame: str | bytes) -> int | None:
    """The close code the README gives for a frame: binary 1003, over the size limit 1009."""
    if isinstance(frame, bytes):
        return 1003
    return 1009 if len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES else None


async def raw_exchange(session: RawSession, piece: str, frame: str | bytes) -> None:
    session.close_code = None
    ws = await session.open()
    await send(ws, frame)
    expected = expected_close(frame)
    if expected is not None:
        code = await session.until_closed()
        assert code == expected, f"{piece} frame closed with {code}, not {expected}"
        return
    await send(ws, '{"type": "ping", "data": {}}')
    while True:
        event = await session.event()
        if event is None:
            code = session.close_code
            assert code != SERVER_ERROR, f"1011 after a {piece} frame"
            assert code in FLOW_CONTROL_CLOSES, f"{piece} frame closed the socket with {code}"
            return
        if event["type"] == "pong":
            return


# -- Socket.IO (python-socketio's client) ------------------------------------------------------

def check_ack(event: str, ack: Any) -> None:
    assert isinstance(ack, dict), f"{event}: ack {ack!r}"
    if ack.get("status") == "ok":
        assert "data" in ack, ack
        return
    assert ack.get("status") == "error", f"{event}: ack {ack!r}"
    error = ack.get("error")
    assert isinstance(error, dict) and error.get("code") in SIO_ERROR_CODES, f"{event}: {ack!r}"
    assert isinstance(error.get("message"), str), ack


SIO_VALUE_PIECES_EXTRA: dict[str, st.SearchStrategy[Any]] = {
    "binary_attachment": st.binary(min_size=1, max_size=64),
}


class SioSession:
    def __init__(self, tenant: Tenant, auth: dict[str, str]) -> None:
        self.tenant = tenant
        self.auth = auth
        self.client: socketio.AsyncClient | None = None
        self.gone = asyncio.Event()  # set when the server ends the connection

    async def open(self) -> socketio.AsyncClient:
        if self.client is None or not self.client.connected:
            self.client = socketio.AsyncClient(reconnection=False)
            self.gone = asyncio.Event()
            self.client.on("disconnect", lambda *_: self.gone.set())
            await asyncio.wait_for(self.client.connect(
                self.tenant.live.base_url, auth=self.auth, transports=["websocket"]), TIMEOUT)
            ack = await self.client.call("join", {"room_id": self.tenant.room_id},
                                         timeout=TIMEOUT)
            assert ack["status"] == "ok", ack
        return self.client

    async def close(self) -> None:
        if self.client is not None and self.client.connected:
            await asyncio.wait_for(self.client.disconnect(), TIMEOUT)


@pytest.fixture(scope="module")
def sio_sessions(live: LiveServer, tenant: Tenant) -> Any:
    sessions = {name: SioSession(tenant, auth) for name, auth in tenant.credentials().items()}
    yield sessions
    for session in sessions.values():
        live.run(session.close(), TIMEOUT * 2)


def sio_events() -> st.SearchStrategy[tuple[str, str]]:
    names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1,
                    max_size=20).filter(lambda n: n not in RESERVED_SIO_EVENTS | set(SIO_EVENTS))
    return pieces("sio", {"event": st.sampled_from(SIO_EVENTS), "unknown_event": names})


@given(data=st.data())
@settings(max_examples=SIO_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck), print_blob=False)
def test_socketio_events(live: LiveServer, tenant: Tenant, sio_sessions: dict[str, SioSession],
                         data: st.DataObject) -> None:
    who = data.draw(st.sampled_from(sorted(sio_sessions)), label="credential")
    _, event = data.draw(sio_events(), label="event")
    binary = {k: v for k, v in SIO_VALUE_PIECES_EXTRA.items()
              if f"sio:{k}" not in KNOWN_BUGS_UNTIL_MERGE}
    attachment = binary and data.draw(st.booleans(), label="binary")
    if attachment:
        payload: Any = {"room_id": tenant.room_id, "content": "x",
                        "meta": bytes(data.draw(pieces("sio", binary), label="attachment")[1])}
        size = 0
    else:
        payload = data.draw(payloads("sio", tenant.room_id), label="payload")
        size = len(hostile.dumps([event, payload]).encode())  # as the client sends it, about
    assume(abs(size - MAX_FRAME_BYTES) > 1024)  # too close to the limit to know which side
    ends = attachment or size > MAX_FRAME_BYTES
    live.run(sio_exchange(sio_sessions[who], event, payload, ends), TIMEOUT * 4)
    live.assert_no_traceback((event, hostile.short(repr(payload))))


async def sio_exchange(session: SioSession, event: str, payload: Any, ends: bool) -> None:
    client = await session.open()
    if ends:  # a frame over the limit (1009) or a binary event (1003): no ack, disconnected
        await asyncio.wait_for(client.emit(event, payload), TIMEOUT)
        await asyncio.wait_for(session.gone.wait(), TIMEOUT)
        return
    try:
        ack = await client.call(event, payload, timeout=TIMEOUT)
    except socketio.exceptions.TimeoutError:
        raise AssertionError(f"no ack for {event!r} (connected: {client.connected})") from None
    assert client.connected, f"{event!r} disconnected the client"
    check_ack(event, ack)


# -- engine.io over a plain WebSocket: malformed Socket.IO packets -----------------------------

def engineio_packets(room_id: str) -> st.SearchStrategy[tuple[str, str | bytes]]:
    table: dict[str, st.SearchStrategy[Any]] = {
        "sio_event_text": st.builds(lambda ack, body: f"42{ack}{body}",
                                    st.sampled_from(["", "7"]), st.text(min_size=1, max_size=60)),
        "sio_event_json": st.builds(lambda ack, body: f"42{ack}{body}",
                                    st.sampled_from(["", "7", "99999999999999999999"]),
                                    values("eio").map(hostile.dumps)),
        "sio_event_array": st.builds(
            lambda name, args: f"421{hostile.dumps([name, *args])}",
            st.one_of(st.sampled_from(SIO_EVENTS), hostile.text),
            st.lists(values("eio"), max_size=3)),
        "sio_event_not_a_name": st.builds(lambda first: f"421{hostile.dumps([first])}",
                                          values("eio").filter(lambda v: not isinstance(v, str))),
        "sio_empty_event": st.sampled_from(["42[]", "421[]"]),
        "sio_truncated_json": st.sampled_from(['42["join"', "42[", "42]", "41{", "40{", "4{"]),
        "sio_no_payload": st.sampled_from(["4", "42", "421"]),
        "sio_bad_packet_type": st.sampled_from(["4x", "49", "4-1[]", "44"]),
        "sio_binary_announce": st.sampled_from(
            ["45", "46", '451-["message",{"_placeholder":true,"num":0}]',
             '4510000000000-["ping",{"_placeholder":true,"num":0}]']),
        "engineio_packet": st.sampled_from(["0", "1", "5", "6", "2probe", "3", "43"]),
        "engineio_message_without_sio": st.just("b"),
        "engineio_bad_type": st.sampled_from(["9", "7", "x"]),
        "empty_frame": st.just(""),
        "random_text": st.text(min_size=1, max_size=100),
        "long_int_literal": st.just(f'421["join", {{"room_id": "{room_id}", '
                                    f'"last_seq": {hostile.HUGE_LITERAL}}}]'),
        "long_ack_id": st.just(f'42{hostile.HUGE_LITERAL}["ping"]'),
        "big_last_seq": st.sampled_from(hostile.HUGE_INTS).map(
            lambda n: f'421["join", {{"room_id": "{room_id}", "last_seq": {n}}}]'),
        "deep_nesting_text": st.builds(lambda d, k: "421" + hostile.nested_text(d, k),
                                       st.integers(300, 10_000), st.sampled_from(["list", "dict"])),
        "binary_frame": st.binary(min_size=0, max_size=32),
    }
    return pieces("eio", table)


class EngineIoSession:
    """engine.io v4 over a WebSocket: CONNECT to `/`, then raw Socket.IO packets."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.next_id = 1000

    async def reset(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await asyncio.wait_for(self.ws.close(), TIMEOUT)
        self.ws = None

    async def open(self) -> aiohttp.ClientWebSocketResponse:
        if self.ws is None or self.ws.closed:
            http = await self.tenant.session()
            url = f"{self.tenant.live.ws_base}/socket.io/?EIO=4&transport=websocket"
            self.ws = await http.ws_connect(url, autoping=True,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT))
            assert (await self.text()).startswith("0{")  # engine.io OPEN
            await asyncio.wait_for(self.ws.send_str(
                "40" + json.dumps({"token": self.tenant.key, "user_id": "fuzz-eio"})), TIMEOUT)
            reply = await self.text()
            assert reply is not None and reply.startswith("40{"), reply
        return self.ws

    async def text(self) -> str | None:
        """The next text packet (engine.io pings answered), or None once closed."""
        assert self.ws is not None
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED):
                return None
            assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
            if msg.data == "2":
                await asyncio.wait_for(self.ws.send_str("3"), TIMEOUT)
                continue
            return msg.data


@pytest.fixture(scope="module")
def engineio(live: LiveServer, tenant: Tenant) -> Any:
    session = EngineIoSession(tenant)
    yield session
    if session.ws is not None and not session.ws.closed:
        live.run(session.ws.close(), TIMEOUT)


# A session the server ended cleanly: engine.io CLOSE, Socket.IO DISCONNECT, a protocol error.
CLEAN_ENDINGS = {1000, 1002, 1003, 1009}


@given(data=st.data())
@settings(max_examples=ENGINEIO_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck), print_blob=False)
def test_engineio_packets(live: LiveServer, tenant: Tenant, engineio: EngineIoSession,
                          data: st.DataObject) -> None:
    piece, packet = data.draw(engineio_packets(tenant.room_id), label="packet")
    if isinstance(packet, str) and expected_close(packet) == 1009:
        assume("eio:over_frame_limit" not in KNOWN_BUGS_UNTIL_MERGE)
    try:
        live.run(engineio_exchange(engineio, piece, packet), TIMEOUT * 4)
        live.assert_no_traceback((piece, packet))
    except BaseException:
        live.run(engineio.reset(), TIMEOUT * 2)
        raise


async def engineio_exchange(session: EngineIoSession, piece: str, packet: str | bytes) -> None:
    ws = await session.open()
    await send(ws, packet)
    if isinstance(packet, str) and expected_close(packet) == 1009:  # over the frame limit
        while await session.text() is not None:
            pass
        assert ws.close_code == 1009, f"{piece} {packet!r} closed with {ws.close_code}"
        return
    session.next_id += 1
    probe = session.next_id
    await send(ws, f'42{probe}["ping"]')
    while True:
        text = await session.text()
        if text is None:
            code = ws.close_code
            assert code != SERVER_ERROR, f"1011 after {piece} {packet!r}"
            assert code in CLEAN_ENDINGS, f"{piece} {packet!r} closed with {code}"
            return
        if text in ("1", "41"):  # engine.io CLOSE / Socket.IO DISCONNECT: a clean ending
            await asyncio.wait_for(ws.close(), TIMEOUT)
            return
        if text.startswith(f"43{probe}"):
            (ack,) = json.loads(text[len(f"43{probe}"):])
            check_ack("ping", ack)
            return
        if text.startswith("44"):  # Socket.IO CONNECT_ERROR: must be the documented shape
            raise AssertionError(f"{piece} {packet!r} got {hostile.short(text)}")


# -- the server afterwards ---------------------------------------------------------------------

def test_server_survived_without_a_traceback(live: LiveServer) -> None:
    """Runs last: the fuzzed server is still up and logged no unexpected failure."""
    assert live.alive()
    assert requests.get(f"{live.base_url}/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    log = live.log()
    assert "Traceback" not in log, log[-5000:]


"""Secrets never reach the log: credential values are replaced in every record before any
handler writes it (aiohttp logs rejected request lines, `?token=…` included, at ERROR)."""

from __future__ import annotations

import logging
import re

from aiohttp.http_exceptions import HttpProcessingError

REDACTED = "[REDACTED]"
_QUERY = re.compile(r"(?i)((?<![\w-])(?:token|key|api_key|api-key|access_token)=)[^&\s'\"\\]+")
_HEADER = re.compile(
    r"(?i)((?<![\w-])(?:authorization|x-api-key)['\"]?(?:\s*[:=,]\s*|\s+)['\"]?(?:bearer\s+)?)"
    r"[^\s'\",}\\]+")


_BYTES = re.compile(r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"')
_REQUEST_LINE = re.compile(r"^b.[A-Z]{1,16} \S+ HTTP/")


def scrub(text: str) -> str:
    return _HEADER.sub(r"\1" + REDACTED, _QUERY.sub(r"\1" + REDACTED, text))


def scrub_parser_input(text: str) -> str:
    """aiohttp's parser errors quote the rejected input: a request line keeps its method and
    path, anything else (a header line, or a bare header value) is redacted whole."""
    def one(match: re.Match[str]) -> str:
        literal = match.group(0)
        return scrub(literal) if _REQUEST_LINE.match(literal) else f"b'{REDACTED}'"

    return _BYTES.sub(one, scrub(text))


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
            parser_error = record.exc_info and isinstance(record.exc_info[1],
                                                          HttpProcessingError)
            record.exc_text = (scrub_parser_input if parser_error else scrub)(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """On every handler of `logger` (the root by default): handler filters see records
    propagated from every logger, aiohttp's included."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
            handler.addFilter(ScrubSecrets())

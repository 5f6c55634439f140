"""Hostile JSON and frames for the fuzzers, as named strategy pieces.

Each piece has a name so a piece that hits a bug still being fixed on another branch can be
left out by name (`KNOWN_BUGS_UNTIL_MERGE` in the tests), without touching the assertions.
Deeply nested values are built iteratively: the fuzzer must not hit its own recursion limit.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Integers past every bound a server might keep: int32, a float's exact range, int64, uint64;
# then 301-digit ones, and one longer than Python's 4300-digit int-to-str limit.
HUGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64]
LONG_INTS = [10**300, -(10**300), 10**100]
HUGE_LITERAL = "9" * 5000
# Strings every text field must refuse or keep verbatim, never choke on.
NASTY_TEXT = ["", " ", "\x00", "a\x00b", "\u202e", "\u00a0", "\ud800", "\udfff", "\ufeff",
              "\U0001f600", "'\"<script>", "../../etc/passwd", "%00", "\r\n", "x" * 300,
              "\n" * 50, "null", "true", "-1", "1e999", "NaN"]

text = st.one_of(st.text(max_size=40), st.sampled_from(NASTY_TEXT))
ints = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from(HUGE_INTS))
scalars = st.one_of(st.none(), st.booleans(), ints,
                    st.floats(allow_nan=False, allow_infinity=False), text)
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                     st.dictionaries(text, inner, max_size=5)),
    max_leaves=25)


def nested(depth: int, kind: str, leaf: Any = 1) -> Any:
    """`depth` levels of lists or of `{"a": …}` objects around `leaf`, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def nested_text(depth: int, kind: str) -> str:
    """The JSON text of `nested(depth, kind)`, built without recursion."""
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def deep(min_depth: int, max_depth: int, *, as_text: bool = False) -> st.SearchStrategy[Any]:
    build = nested_text if as_text else nested
    return st.builds(build, st.integers(min_depth, max_depth), st.sampled_from(["list", "dict"]))


# Values that must be refused (or accepted) with a documented error. Depth: the servers allow
# 8 levels of `meta`, so 9-200 is ordinary "too deep"; 300+ is past Python's recursion limit
# for recursive validators and JSON encoders.
VALUE_PIECES: dict[str, st.SearchStrategy[Any]] = {
    "json": json_values,
    "huge_int": st.sampled_from(HUGE_INTS),
    "long_int": st.sampled_from(LONG_INTS),
    "nasty_text": st.sampled_from(NASTY_TEXT),
    "long_text": st.integers(10_001, 40_000).map(lambda n: "x" * n),
    "deep_nesting": deep(9, 200),
    "deep_nesting_past_recursion_limit": deep(300, 700),
}


class Frame(str):
    """Text that Hypothesis and assertion messages show shortened (frames run to megabytes)."""

    def __repr__(self) -> str:
        return short(str(self))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class Blob(bytes):
    def __repr__(self) -> str:
        return short(bytes(self))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def short(value: str | bytes, keep: int = 160) -> str:
    if len(value) <= keep:
        return repr(value)
    return f"{value[:keep // 2]!r}...{value[-keep // 4:]!r} ({len(value)} long)"


def dumps(value: Any) -> str:
    """JSON text of a value; lone surrogates go out as `\\udxxx` escapes, as JSON allows."""
    return json.dumps(value, ensure_ascii=True)

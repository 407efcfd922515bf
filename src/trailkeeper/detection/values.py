"""Rule values turned into plain Python tests, once, at compile time.

A Sigma value (pySigma's `SigmaType`) becomes either a `StringSpec` (strings: equality,
prefix, suffix, substring or wildcard pattern, on casefolded text unless ``|cased``) or a
`ScalarTest`: a function of one event value (never a list: the caller applies it to every
element). The per-event path never touches a pySigma object.

Decisions (see docs/detection.md, "Rule semantics"):

- Strings compare case-insensitively with `str.casefold` on both sides; ``|cased`` compares
  exactly. Whitespace is never normalised.
- Wildcards ``*`` and ``?`` are read from `SigmaString.s` (never ``str()``, which is lossy for
  escapes); a value without wildcards is a whole-value match.
- An event number compared with a rule string is compared as its decimal text, and also
  numerically when the rule string is a number (rule ``'5'`` matches event ``5.0``); an event
  boolean reads as ``true``/``false``.
- A rule number (``field: 5``) matches an event number or a string that parses as that number.
- ``|re`` is Python `re` (pySigma's TrustedPolicy), searched unanchored; ``i``/``m``/``s`` map
  to IGNORECASE/MULTILINE/DOTALL; case-sensitive by default.
- ``|cidr``: the event value must parse as an IP address of the network's version; anything
  else does not match.
- ``|lt`` ``|lte`` ``|gt`` ``|gte``: numeric, event strings are coerced; a non-numeric value
  does not match.
- ``|minute`` … ``|year``: the value is read as a time (``{"epochSecond","nano"}``, ISO-8601 or
  epoch seconds/milliseconds) in UTC; ``week`` is the ISO week number, ``day`` the day of month.
"""

from __future__ import annotations

import importlib
import math
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from trailkeeper.detection.document import event_time

__all__ = ["CompileError", "ScalarTest", "StringSpec", "as_number", "bool_test", "cidr_prefix",
           "cidr_test", "compare_test", "number_test", "regex_prefix", "regex_test",
           "string_spec", "timestamp_test"]

ScalarTest = Callable[[Any], bool]


class CompileError(ValueError):
    """A rule uses something the engine cannot evaluate (the rule is rejected)."""


def as_number(value: Any) -> float | None:
    """``value`` as a finite number (ints, floats and numeric strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


# -- strings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StringSpec:
    """One string value: ``kind`` is eq, prefix, suffix, contains or pattern.

    ``needle`` is the literal (casefolded unless ``cased``) for the first four kinds;
    ``pattern`` is an anchored regex for wildcard shapes the string operations cannot express.
    ``text`` is the value as written (wildcards as ``*``/``?``), for explanations.
    """

    kind: str
    needle: str
    pattern: re.Pattern[str] | None
    cased: bool
    text: str


def _display(parts: list[Any]) -> str:
    out = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append("*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append("?")
        else:
            out.append(str(part))
    return "".join(out)


def _parts(value: SigmaString) -> list[Any]:
    parts: list[Any] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise CompileError(
                f"placeholder %{part.name}% (|expand) cannot be resolved: Trailkeeper has no "
                "placeholder values, so the rule is rejected")
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part  # adjacent literals (after modifiers) read as one
        else:
            parts.append(part)
    return parts


def _pattern(parts: list[Any], fold: bool, *, any_char: str = ".") -> str:
    out = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append(f"{any_char}*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(any_char)
        else:
            out.append(re.escape(part.casefold() if fold else part))
    return "".join(out)


def string_spec(value: SigmaString, *, cased: bool) -> StringSpec:
    """Classify a field value: the fast string operations when its wildcard shape allows."""
    parts = _parts(value)
    text = _display(parts)
    star = SpecialChars.WILDCARD_MULTI
    literal = [p for p in parts if isinstance(p, str)]

    def fold(s: str) -> str:
        return s if cased else s.casefold()

    if not parts:
        return StringSpec("eq", "", None, cased, text)
    if len(parts) == 1 and literal:
        return StringSpec("eq", fold(parts[0]), None, cased, text)
    if len(parts) == 2 and parts[1] is star and literal == [parts[0]]:
        return StringSpec("prefix", fold(parts[0]), None, cased, parts[0])
    if len(parts) == 2 and parts[0] is star and literal == [parts[1]]:
        return StringSpec("suffix", fold(parts[1]), None, cased, parts[1])
    if len(parts) == 3 and parts[0] is star and parts[2] is star and literal == [parts[1]]:
        return StringSpec("contains", fold(parts[1]), None, cased, parts[1])
    regex = re.compile(_pattern(parts, not cased), re.DOTALL)
    return StringSpec("pattern", "", regex, cased, text)


def keyword_spec(value: SigmaString, *, cased: bool) -> StringSpec:
    """A keyword: a substring of some string in the event, honouring wildcards.

    Keywords are searched in one string made of every string leaf joined with NUL, so
    wildcards are translated to ``[^\\x00]`` and never span two leaves.
    """
    parts = _parts(value)
    text = _display(parts)
    while parts and parts[0] is SpecialChars.WILDCARD_MULTI:
        parts.pop(0)
    while parts and parts[-1] is SpecialChars.WILDCARD_MULTI:
        parts.pop()
    if len(parts) <= 1 and all(isinstance(p, str) for p in parts):
        needle = parts[0] if parts else ""
        return StringSpec("contains", needle if cased else needle.casefold(), None, cased, text)
    regex = re.compile(_pattern(parts, not cased, any_char="[^\x00]"))
    return StringSpec("pattern", "", regex, cased, text)


# -- other scalar values -------------------------------------------------------------------


def number_test(value: SigmaNumber) -> ScalarTest:
    """Numeric equality; event strings are coerced."""
    wanted = float(value.number)

    def test(v: Any) -> bool:
        return as_number(v) == wanted
    return test


def bool_test(value: SigmaBool) -> ScalarTest:
    wanted = value.boolean
    text = "true" if wanted else "false"

    def test(v: Any) -> bool:
        if isinstance(v, bool):
            return v is wanted
        return isinstance(v, str) and v.casefold() == text
    return test


_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def regex_test(value: SigmaRegularExpression) -> tuple[ScalarTest, str]:
    """Unanchored `re.search`; numbers are searched as their text. Also returns the pattern."""
    flags = 0
    for flag in value.flags:
        flags |= _RE_FLAGS[flag]
    source = str(value.regexp)  # parsed with escape=False: str() is the pattern as written
    try:
        search = re.compile(source, flags).search
    except re.error as exc:
        raise CompileError(f"invalid regular expression {source!r}: {exc}") from exc

    def test(v: Any) -> bool:
        if isinstance(v, str):
            return search(v) is not None
        if isinstance(v, int | float) and not isinstance(v, bool):
            return search(str(v)) is not None
        return False
    return test, source


# The regex parser of `re` (private, stable since 3.11; no stub, hence the import by name).
_sre: Any = importlib.import_module("re._parser")


def regex_prefix(value: SigmaRegularExpression) -> str | None:
    """Text every string `regex_test` accepts starts with, when the regex is anchored at the
    start and case-sensitive: the literal characters after the ``^``; else None."""
    flags = 0
    for flag in value.flags:
        flags |= _RE_FLAGS[flag]
    try:
        parsed = _sre.parse(str(value.regexp), flags)
    except (re.error, OverflowError, RecursionError):
        return None
    flags = parsed.state.flags
    if flags & (re.IGNORECASE | re.VERBOSE):
        return None
    items = list(parsed)
    if not items or items[0][0] is not _sre.AT:
        return None
    anchor = items[0][1]
    if not (anchor is _sre.AT_BEGINNING_STRING
            or (anchor is _sre.AT_BEGINNING and not flags & re.MULTILINE)):
        return None
    chars = []
    for op, arg in items[1:]:
        if op is not _sre.LITERAL:
            break
        chars.append(chr(arg))
    return "".join(chars) or None


def _ip(text: str) -> tuple[int, int] | None:
    """(version, integer) of an IPv4 or IPv6 address in standard notation, or None."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    try:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        return None


# An IPv4 address is accepted only as four decimal numbers without leading zeros (glibc and
# musl), so the whole octets of a network are a prefix of the text of its addresses.
_CANONICAL_V4 = _ip("01.2.3.4") is None and _ip("1.2.3.4") is not None


def cidr_prefix(value: SigmaCIDRExpression) -> str | None:
    """Text every address `cidr_test` accepts starts with (IPv4 networks of /8 or longer)."""
    network = value.network
    whole = network.prefixlen // 8
    if network.version != 4 or not whole or not _CANONICAL_V4:
        return None
    octets = str(network.network_address).split(".")[:whole]
    return ".".join(octets) + ("." if whole < 4 else "")


def cidr_test(value: SigmaCIDRExpression) -> ScalarTest:
    network = value.network
    version = network.version
    mask = int(network.netmask)
    base = int(network.network_address)

    def test(v: Any) -> bool:
        if type(v) is not str:
            return False
        address = _ip(v)
        return address is not None and address[0] == version and address[1] & mask == base
    return test


_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
    CompareOperators.NEQ: lambda a, b: a != b,
}

COMPARE_WORDS = {CompareOperators.LT: "<", CompareOperators.LTE: "<=", CompareOperators.GT: ">",
                 CompareOperators.GTE: ">=", CompareOperators.NEQ: "!="}


def compare_test(value: SigmaCompareExpression) -> ScalarTest:
    compare = _COMPARE[value.op]
    limit = float(value.number.number)

    def test(v: Any) -> bool:
        number = as_number(v)
        return number is not None and compare(number, limit)
    return test


def timestamp_test(value: SigmaTimestampPart) -> ScalarTest:
    part = value.timestamp_part
    wanted = int(value.number)

    def test(v: Any) -> bool:
        moment = event_time(v)
        if moment is None:
            return False
        if part is TimestampPart.MINUTE:
            got = moment.minute
        elif part is TimestampPart.HOUR:
            got = moment.hour
        elif part is TimestampPart.DAY:
            got = moment.day
        elif part is TimestampPart.WEEK:
            got = moment.isocalendar().week
        elif part is TimestampPart.MONTH:
            got = moment.month
        else:
            got = moment.year
        return got == wanted
    return test

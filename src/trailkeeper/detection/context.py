"""One event as the compiled rules see it while it is matched.

`Ctx` caches what several leaves of several rules would otherwise each compute: the
casefolded value of a field (`fold`), the event as JSON and casefolded JSON (the keyword
prefilter and the engine's keyword gate), and every string value joined (exact keyword
tests). Per event only ``doc`` and ``folded`` are set up; the rest is made when asked.

Why the JSON text can rule keywords out: orjson writes every string as UTF-8 and escapes
only ``"``, ``\\`` and control characters, so a needle without those (`json_plain`) that
is in a value is in the JSON; casefolding works character by character, so a casefolded
needle in a casefolded value is in the casefolded JSON. Keys and numbers are in the JSON
too: it can only let more through, never less.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from trailkeeper.detection.fields import Resolver, event_strings

__all__ = ["Ctx", "fold", "json_plain", "uncased_anchor"]

_UNSET: Any = object()


def fold(value: Any) -> Any:
    """The value as string tests see it: strings casefolded, booleans as true/false."""
    if type(value) is str:
        return value.casefold()
    if type(value) is list:
        return [fold(v) for v in value]
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


class Ctx:
    """One event being matched: caches casefolded field values and the keyword texts.

    The texts are made the first time a keyword asks for them (None until then, empty
    bytes when the event cannot be serialised); the joined values, rarely needed, are not
    even set up front.
    """

    __slots__ = ("_joined", "_joined_raw", "_json", "_text", "doc", "folded")

    _joined: str
    _joined_raw: str

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.folded: dict[str, Any] = {}
        self._json: bytes | None = None
        self._text: bytes | str | None = None

    def json(self) -> bytes | None:
        """The event as JSON (None when it cannot be serialised): every string value of the
        event appears in it as UTF-8, except characters JSON escapes (``"``, ``\\``, control
        characters), which makes it a cheap keyword prefilter."""
        raw = self._json
        if raw is None:
            try:
                raw = self._json = orjson.dumps(self.doc)
            except TypeError:  # orjson.JSONEncodeError: not a dict of JSON values
                raw = self._json = b""
        return raw or None

    def keyword_text(self) -> bytes | str | None:
        """`json` casefolded: bytes when it is ASCII (`bytes.lower` is then the casefold,
        and needles are looked up UTF-8 encoded), else str. Casefolding is per character,
        so a casefolded value's text appears in it just as the value's appears in `json`."""
        text = self._text
        if text is None:
            raw = self.json()
            text = self._text = (b"" if raw is None else raw.lower() if raw.isascii()
                                 else raw.decode().casefold())
        return text or None

    def fold(self, name: str, resolve: Resolver) -> Any:
        value = self.folded.get(name, _UNSET)
        if value is _UNSET:
            value = self.folded[name] = fold(resolve(self.doc))
        return value

    def joined(self, cased: bool) -> str:
        """Every string value of the event, NUL-separated (casefolded unless ``cased``)."""
        if cased:
            try:
                return self._joined_raw
            except AttributeError:
                self._joined_raw = "\x00".join(event_strings(self.doc))
                return self._joined_raw
        try:
            return self._joined
        except AttributeError:
            self._joined = self.joined(True).casefold()
            return self._joined


_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def json_plain(needle: str) -> bool:
    """Whether ``needle`` is written unchanged by JSON (so `Ctx.json` can rule it out)."""
    return bool(needle) and _JSON_ESCAPED.search(needle) is None


# Printable ASCII characters that are not letters: no character casefolds to a text holding
# one of them but the character itself (tests/detection/test_engine_index.py checks this on
# all of Unicode), so a run of them in a casefolded value was in the value as it is.
_UNCASED = re.compile(r"[ -@\[-`{-~]+")


def uncased_anchor(needle: str) -> str:
    """The longest run of `_UNCASED` characters in a (casefolded) keyword: it appears in the
    event's JSON as it is, without casefolding the JSON, whenever the keyword appears in a
    casefolded value. Empty when there is none."""
    return max(_UNCASED.findall(needle), key=len, default="")

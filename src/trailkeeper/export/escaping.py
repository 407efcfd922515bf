"""What each output format must never let through, and what it becomes instead.

- JSON (``json``, ``ndjson``): the encoders escape C0 controls but write DEL, the C1 controls
  (U+0080-U+009F, among them NEL U+0085) and U+2028/U+2029 raw. Python's
  ``str.splitlines()`` and JavaScript split lines on NEL, U+2028 and U+2029, so all of them
  are written as ``\\uXXXX`` escapes (the JSON value is unchanged).
- XML 1.0 forbids the C0 controls other than tab, LF and CR, U+FFFE, U+FFFF and lone
  surrogates, even as character references: they become U+FFFD, so one bad character
  cannot make a document unreadable. Markup characters are escaped with ``xml.sax.saxutils``.
- Terminal text: no C0 or C1 control and no DEL reaches the output (escape sequences could
  move the cursor, rewrite the screen or set the window title), nor the bidirectional
  controls of "Trojan Source" (CVE-2021-42574). Tabs and line breaks become spaces; the other
  controls are shown as ``\\xNN`` or ``\\uNNNN``; lone surrogates become U+FFFD.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

# -- JSON -----------------------------------------------------------------------------------

# UTF-8 of DEL, U+0080-U+009F, U+2028 and U+2029. UTF-8 is self-synchronising, so these bytes
# cannot be part of another character; in encoder output they only occur inside strings.
_JSON_RAW = re.compile(rb"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")


def json_one_line(chunk: bytes) -> bytes:
    """Encoder output with the characters that could split a line escaped."""
    # The membership tests are fast scans; the regex runs only on the rare chunk that needs it.
    if b"\x7f" in chunk or b"\xc2" in chunk or b"\xe2\x80" in chunk:
        return _JSON_RAW.sub(_json_escape, chunk)
    return chunk


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode())


# -- XML ------------------------------------------------------------------------------------

_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_FORBIDDEN_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_TEXT_ENTITIES = {"\r": "&#13;"}  # a raw CR would be read back as LF
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def xml_chars(text: str) -> str:
    """Text with every character XML 1.0 forbids replaced by U+FFFD."""
    return _XML_FORBIDDEN.sub("\ufffd", text)


def xml_bytes(text: str) -> bytes:
    """`xml_chars` as UTF-8; fast scans of the bytes spare the regex most of the time."""
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return xml_chars(text).encode()
    if (len(data.translate(None, _FORBIDDEN_BYTES)) != len(data)
            or b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data):  # U+FFFE, U+FFFF
        return xml_chars(text).encode()
    return data


def xml_text(value: str) -> str:
    """Element content."""
    # Most values hold nothing to escape: a few scans cost less than escape()'s replaces.
    if "&" in value or "<" in value or ">" in value or "\r" in value:
        return escape(value, _TEXT_ENTITIES)
    return value


def xml_attr(value: str) -> str:
    """An attribute value with its double quotes; whitespace survives attribute
    normalisation as character references."""
    if ("&" in value or "<" in value or ">" in value or '"' in value or "\n" in value
            or "\r" in value or "\t" in value):
        return f'"{escape(value, _ATTR_ENTITIES)}"'
    return f'"{value}"'


# -- terminal text --------------------------------------------------------------------------

_TERMINAL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]")
_BLANK = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # what splitlines() breaks on


def terminal_text(value: str) -> str:
    """One line of text that is safe to print to a terminal."""
    # isprintable() is False for every character _TERMINAL matches, so most values skip it.
    if value.isprintable():
        return value
    return _TERMINAL.sub(_terminal_char, value)


def _terminal_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _BLANK:
        return " "
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"\\u{code:04x}"

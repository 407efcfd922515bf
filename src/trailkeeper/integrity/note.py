"""C2SP signed notes and tlog checkpoints: signing, opening and strict parsing.

A signed note (c2sp.org/signed-note, Go's ``golang.org/x/mod/sumdb/note``) is a text ending in
a newline, a blank line, then one or more signature lines::

    <text>\\n
    \\n
    — <key name> base64(4-byte big-endian key ID || signature)\\n

A checkpoint (c2sp.org/tlog-checkpoint) is a note whose text is ``origin``, tree ``size`` in
decimal and base64 ``root``, one per line, followed by optional non-empty extension lines.

Pure functions of their inputs. Keys are anything with ``name``, ``key_id`` and ``sign`` /
``verify`` (see ``NoteSigner`` / ``NoteVerifier``); ``trailkeeper.integrity.keys`` provides the
Ed25519 ones. Every malformed input raises a ``NoteError`` (a ``ValueError``), never anything else.

Where this module is stricter than Go's ``note.Open`` (both allowed by the C2SP text):

* base64 must be canonical (padding present, unused bits zero), so a note has exactly one
  encoding that verifies;
* two signature lines for the same *known* key are rejected instead of the second being skipped
  unverified: C2SP says a signature from a known key MUST be verified.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from trailkeeper.errors import TrailkeeperError

__all__ = [
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "InvalidSignatureError",
    "KeyFormatError",
    "MalformedNoteError",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "Signature",
    "UnverifiedNoteError",
    "VerifiedNote",
    "checkpoint_body",
    "decode_base64",
    "is_valid_key_name",
    "open_note",
    "parse_checkpoint",
    "sign_note",
    "signed_checkpoint",
    "verify_checkpoint",
]

#: Go's note.Open limit; C2SP requires accepting at least 16. Bounds the work a hostile note costs.
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "  # em dash, space
_HASH_SIZE = 32
_MAX_TREE_SIZE = 2**63 - 1  # Go's int64 tree size; larger is malformed
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")  # ASCII only: str.isdigit would take "٣"

# Unicode White_Space, i.e. Go's unicode.IsSpace, which key names must not contain. Python's
# str.isspace differs (it also matches U+001C..U+001F), so the set is spelled out.
_UNICODE_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


# -- errors -----------------------------------------------------------------------------------


class NoteError(TrailkeeperError, ValueError):
    """A note, checkpoint or key string is malformed or does not verify."""

    http_status = 400
    exit_code = 1


class MalformedNoteError(NoteError):
    """The note does not follow the signed-note syntax."""


class UnverifiedNoteError(NoteError):
    """The note parsed, but no signature is from a known key; ``unverified`` lists them."""

    def __init__(self, unverified: Sequence[Signature]) -> None:
        self.unverified = tuple(unverified)
        keys = ", ".join(f"{s.name}+{s.key_id:08x}" for s in self.unverified[:5])
        super().__init__(f"note has no verifiable signatures (signed by unknown keys: {keys})")


class InvalidSignatureError(NoteError):
    """A known key's signature on the note does not verify."""

    def __init__(self, name: str, key_id: int) -> None:
        self.name = name
        self.key_id = key_id
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")


class CheckpointError(NoteError):
    """A checkpoint body is malformed or is not for the expected origin."""


class KeyFormatError(NoteError):
    """A key name, verifier key or signer key string is malformed."""


# -- keys as the note code sees them --------------------------------------------------------


class NoteSigner(Protocol):
    """Anything that can sign a note: a key name, its 32-bit key ID and a signing function."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes: ...


class NoteVerifier(Protocol):
    """Anything that can check one key's signatures on a note."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line of a note: key name, key ID and the base64 as written."""

    name: str
    key_id: int
    base64: str


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """An opened note: its text, the signatures that verified, and those from unknown keys."""

    text: str
    signatures: tuple[Signature, ...]
    unverified: tuple[Signature, ...] = ()


def is_valid_key_name(name: str) -> bool:
    """Report whether ``name`` is a valid key name (Go's isValidName)."""
    return (
        name != ""
        and _is_utf8(name)
        and "+" not in name
        and not any(ch in _UNICODE_SPACES for ch in name)
    )


def decode_base64(text: str) -> bytes:
    """Decode standard, padded base64, refusing any non-canonical spelling of the bytes."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII input
        raise ValueError("not valid base64") from None
    # b64decode ignores non-zero padding bits; re-encoding makes one spelling per value.
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


# -- signing and opening ----------------------------------------------------------------------


def sign_note(text: str, *signers: NoteSigner) -> str:
    """Return ``text`` followed by a blank line and one signature line per signer."""
    if not text:
        raise MalformedNoteError("note text is empty")
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline")
    _check_characters(text, "note text")
    if not signers:
        raise MalformedNoteError("a note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise MalformedNoteError(f"more than {MAX_SIGNATURES} signers")
    message = text.encode("utf-8")
    seen: set[tuple[str, int]] = set()
    lines = []
    for signer in signers:
        name, key_id = signer.name, signer.key_id
        # A control character in a name would make the note unopenable; Go checks only spaces.
        if not is_valid_key_name(name) or any(ord(ch) < 0x20 for ch in name):
            raise KeyFormatError(f"invalid signer key name {name!r}")
        if not 0 <= key_id <= 0xFFFFFFFF:
            raise KeyFormatError(f"signer {name}: key ID {key_id} is not a 32-bit value")
        if (name, key_id) in seen:
            raise MalformedNoteError(f"signer {name}+{key_id:08x} given twice")
        seen.add((name, key_id))
        blob = key_id.to_bytes(4, "big") + signer.sign(message)
        lines.append(f"{_SIG_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n")
    # The text ends in "\n", so this adds exactly the one blank separator line.
    return text + "\n" + "".join(lines)


def open_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Parse ``note`` and verify its signatures from the known ``verifiers`` (Go's note.Open)."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNoteError(f"note is not valid UTF-8 (byte {exc.start})") from None
    _check_characters(note, "note")

    # The text runs to the *last* blank line, so the text itself may contain blank lines.
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedNoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise MalformedNoteError("last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")

    known: dict[tuple[str, int], list[NoteVerifier]] = {}
    for verifier in verifiers:
        known.setdefault((verifier.name, verifier.key_id), []).append(verifier)

    message = text.encode("utf-8")
    verified: list[Signature] = []
    unverified: list[Signature] = []
    seen_known: set[tuple[str, int]] = set()
    seen_lines: set[str] = set()
    for number, line in enumerate(lines, start=1):
        signature, raw = _parse_signature_line(line, number)
        key = (signature.name, signature.key_id)
        candidates = known.get(key)
        if candidates is None:
            # Unknown keys are ignored (C2SP MUST); identical repeats are listed once, as in Go.
            if line not in seen_lines:
                seen_lines.add(line)
                unverified.append(signature)
            continue
        if len(candidates) > 1:
            # Two verifiers claim this name and ID: the trusted key list itself is broken.
            raise NoteError(f"ambiguous key {signature.name}+{signature.key_id:08x}")
        if key in seen_known:
            raise MalformedNoteError(
                f"signature line {number}: second signature by key "
                f"{signature.name}+{signature.key_id:08x}"
            )
        seen_known.add(key)
        if not candidates[0].verify(message, raw):
            raise InvalidSignatureError(signature.name, signature.key_id)
        verified.append(signature)

    if not verified:
        raise UnverifiedNoteError(unverified)
    return VerifiedNote(text, tuple(verified), tuple(unverified))


def _parse_signature_line(line: str, number: int) -> tuple[Signature, bytes]:
    """Split one signature line into its ``Signature`` and the raw signature bytes."""
    where = f"signature line {number}"
    if not line.startswith(_SIG_PREFIX):
        raise MalformedNoteError(f"{where} does not start with an em dash and a space")
    name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not is_valid_key_name(name):
        raise MalformedNoteError(f"{where}: invalid key name {name!r}")
    if not b64:
        raise MalformedNoteError(f"{where}: missing signature after key name {name!r}")
    try:
        blob = decode_base64(b64)
    except ValueError as exc:
        raise MalformedNoteError(f"{where}: signature is {exc}") from None
    if len(blob) < 5:  # 4-byte key ID plus at least one signature byte, as in Go
        raise MalformedNoteError(f"{where}: signature is too short ({len(blob)} bytes)")
    return Signature(name, int.from_bytes(blob[:4], "big"), b64), blob[4:]


# -- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog checkpoint: log origin, tree size, RFC 6962 root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        # bool is an int subclass; a True tree size is a caller bug, not a size of 1.
        if type(self.size) is not int or not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointError(f"tree size must be an integer in 0..2**63-1, got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != _HASH_SIZE:
            raise CheckpointError(f"root hash must be {_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            object.__setattr__(self, "extensions", tuple(self.extensions))
        for number, extension in enumerate(self.extensions, start=1):
            _check_line(extension, f"extension line {number}")

    def body(self) -> str:
        """Return the checkpoint note text, every line ending in a newline."""
        lines = (self.origin, str(self.size), base64.b64encode(self.root).decode("ascii"))
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))


def checkpoint_body(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """Return the checkpoint text ``origin\\nsize\\nbase64(root)\\n`` plus extension lines."""
    return Checkpoint(origin, size, root, tuple(extensions)).body()


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly (canonical size and base64, 32-byte root)."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint needs at least 3 lines, got {len(lines)}")
    origin, size_text, root_text, *extensions = lines
    _check_line(origin, "origin")
    if not _DECIMAL.fullmatch(size_text):
        raise CheckpointError(f"tree size {size_text[:40]!r} is not a canonical decimal number")
    size = int(size_text)  # at most 19 digits, so no int-from-str limit or huge numbers
    if size > _MAX_TREE_SIZE:
        raise CheckpointError(f"tree size {size} is larger than 2**63-1")
    try:
        root = decode_base64(root_text)
    except ValueError as exc:
        raise CheckpointError(f"root hash is {exc}") from None
    if len(root) != _HASH_SIZE:
        raise CheckpointError(f"root hash is {len(root)} bytes, expected {_HASH_SIZE}")
    return Checkpoint(origin, size, root, tuple(extensions))


def signed_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    signer: NoteSigner,
    *,
    extensions: Sequence[str] = (),
) -> str:
    """Return the checkpoint for ``(origin, size, root)`` as a note signed by ``signer``."""
    return sign_note(checkpoint_body(origin, size, root, extensions), signer)


def verify_checkpoint(
    note: str | bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Open a signed checkpoint note, parse its body and, if given, check its origin."""
    checkpoint = parse_checkpoint(open_note(note, verifiers).text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}"
        )
    return checkpoint


# -- helpers ----------------------------------------------------------------------------------


def _is_utf8(text: str) -> bool:
    """Report whether ``text`` encodes as UTF-8 (a Python str may hold lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_characters(text: str, what: str) -> None:
    """Raise unless ``text`` is valid UTF-8 without ASCII control characters but newline."""
    if not _is_utf8(text):
        raise MalformedNoteError(f"{what} is not valid UTF-8 (lone surrogate)")
    for index, ch in enumerate(text):
        if ord(ch) < 0x20 and ch != "\n":
            line = text.count("\n", 0, index) + 1
            raise MalformedNoteError(f"{what} has control character {ch!r} on line {line}")


def _check_line(value: str, what: str) -> None:
    """Raise unless ``value`` is a non-empty checkpoint line without control characters."""
    if not isinstance(value, str) or not value:
        raise CheckpointError(f"checkpoint {what} is empty")
    if not _is_utf8(value):
        raise CheckpointError(f"checkpoint {what} is not valid UTF-8")
    # A newline in the origin would shift the size and root lines (the "reparse as 999" hazard).
    if any(ord(ch) < 0x20 for ch in value):
        raise CheckpointError(f"checkpoint {what} contains a newline or control character")

"""Ed25519 note keys: key IDs, Go-compatible key strings and the on-disk signing key.

Key strings are those of Go's ``golang.org/x/mod/sumdb/note``::

    verifier  <name>+<hex8 key ID>+<base64(0x01 || 32-byte public key)>
    signer    PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x01 || 32-byte seed)>

with key ID = ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` read big-endian
(c2sp.org/signed-note). Only the ``*_file`` / ``load_or_create_signer`` helpers do I/O. Secret
key material never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from trailkeeper.errors import ConfigurationError
from trailkeeper.integrity.note import KeyFormatError, decode_base64, is_valid_key_name

__all__ = [
    "ALG_ED25519",
    "Signer",
    "Verifier",
    "format_signer_key",
    "format_verifier_key",
    "generate_signer",
    "key_id",
    "load_or_create_signer",
    "parse_signer_key",
    "parse_verifier_key",
    "read_public_key_pem",
    "read_verifier_key_file",
]

#: Signature type byte of Ed25519 in c2sp.org/signed-note.
ALG_ED25519 = 0x01
_KEY_SIZE = 32
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")  # Go's ParseUint(_, 16, 32) with len 8: either case
_SIGNER_PREFIX = "PRIVATE+KEY+"
# Group/other bits that must be clear on a private key file, as ssh demands.
_PRIVATE_MODE_MASK = 0o077
_MAX_KEY_FILE = 64 * 1024  # a PEM key is a few hundred bytes; refuse to slurp anything huge


def key_id(name: str, public_key: bytes) -> int:
    """Return the 32-bit key ID of the Ed25519 ``public_key`` (32 raw bytes) under ``name``."""
    if len(public_key) != _KEY_SIZE:
        raise KeyFormatError(f"Ed25519 public key must be {_KEY_SIZE} bytes, got {len(public_key)}")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    """Return the 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> None:
    """Raise ``KeyFormatError`` unless ``name`` is a valid key name."""
    if not is_valid_key_name(name):
        raise KeyFormatError(
            f"invalid key name {name!r}: it must be non-empty UTF-8 without spaces or '+'"
        )


@dataclass(frozen=True, slots=True)
class Verifier:
    """One named Ed25519 public key that checks note signatures."""

    name: str
    public_key: Ed25519PublicKey = field(repr=False, compare=False)
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "key_id", key_id(self.name, _raw_public(self.public_key)))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Report whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @property
    def key_string(self) -> str:
        """The Go-compatible verifier key string ``<name>+<hex8 id>+<base64 key>``."""
        return format_verifier_key(self.name, self.public_key)


@dataclass(frozen=True, slots=True)
class Signer:
    """One named Ed25519 private key that signs notes."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        public = _raw_public(self.private_key.public_key())
        object.__setattr__(self, "key_id", key_id(self.name, public))

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self.private_key.sign(message)

    def verifier(self) -> Verifier:
        """Return the verifier for this signer's public key under the same name."""
        return Verifier(self.name, self.private_key.public_key())


def generate_signer(name: str) -> Signer:
    """Return a signer with a fresh random Ed25519 key."""
    return Signer(name, Ed25519PrivateKey.generate())


# -- key strings ------------------------------------------------------------------------------


def format_verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """Return the verifier key string (Go's NewEd25519VerifierKey)."""
    _check_name(name)
    raw = _raw_public(public_key)
    encoded = base64.b64encode(bytes([ALG_ED25519]) + raw).decode("ascii")
    return f"{name}+{key_id(name, raw):08x}+{encoded}"


def format_signer_key(name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the secret signer key string ``PRIVATE+KEY+...`` (Go's GenerateKey)."""
    _check_name(name)
    seed = private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    ident = key_id(name, _raw_public(private_key.public_key()))
    encoded = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
    return f"{_SIGNER_PREFIX}{name}+{ident:08x}+{encoded}"


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse a verifier key string into a ``Verifier`` (Go's NewVerifier)."""
    # The base64 part may itself contain '+', so split at most twice.
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise KeyFormatError("verifier key must be <name>+<key id>+<key>")
    name, hex_id, encoded = parts
    raw = _decode_key(name, hex_id, encoded, "verifier key")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyFormatError(f"verifier key {name}: not an Ed25519 public key") from None
    verifier = Verifier(name, public_key)
    if verifier.key_id != int(hex_id, 16):
        raise KeyFormatError(
            f"verifier key {name}: key ID {hex_id} does not match the name and key "
            f"(expected {verifier.key_id:08x})"
        )
    return verifier


def parse_signer_key(skey: str) -> Signer:
    """Parse a secret ``PRIVATE+KEY+...`` signer key string (Go's NewSigner)."""
    # Errors never quote the string: it is a secret.
    if not skey.startswith(_SIGNER_PREFIX):
        raise KeyFormatError("signer key must start with PRIVATE+KEY+")
    parts = skey[len(_SIGNER_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise KeyFormatError("signer key must be PRIVATE+KEY+<name>+<key id>+<key>")
    name, hex_id, encoded = parts
    seed = _decode_key(name, hex_id, encoded, "signer key")
    try:
        private_key = Ed25519PrivateKey.from_private_bytes(seed)
    except ValueError:
        raise KeyFormatError(f"signer key {name}: not an Ed25519 seed") from None
    signer = Signer(name, private_key)
    # The ID hashes the public key, so it can only be checked once the seed is expanded.
    if signer.key_id != int(hex_id, 16):
        raise KeyFormatError(f"signer key {name}: key ID {hex_id} does not match the key")
    return signer


def _decode_key(name: str, hex_id: str, encoded: str, what: str) -> bytes:
    """Check the name and ID fields and return the 32 key bytes after the type byte."""
    _check_name(name)
    if not _HEX8.fullmatch(hex_id):
        raise KeyFormatError(f"{what} {name}: key ID must be 8 hex digits")
    try:
        blob = decode_base64(encoded)
    except ValueError as exc:
        raise KeyFormatError(f"{what} {name}: key is {exc}") from None
    if not blob:
        raise KeyFormatError(f"{what} {name}: key is empty")
    if blob[0] != ALG_ED25519:
        raise KeyFormatError(
            f"{what} {name}: unknown key type 0x{blob[0]:02x} (only Ed25519, 0x01)"
        )
    if len(blob) != 1 + _KEY_SIZE:
        raise KeyFormatError(
            f"{what} {name}: Ed25519 key must be {_KEY_SIZE} bytes, got {len(blob) - 1}"
        )
    return blob[1:]


# -- files ------------------------------------------------------------------------------------


def load_or_create_signer(path: str | os.PathLike[str], name: str) -> Signer:
    """Load the PKCS#8 PEM signing key at ``path``, creating it (0600) and ``.pub`` if absent."""
    _check_name(name)
    path = Path(path)
    try:
        signer = Signer(name, _read_private_key(path))
    except FileNotFoundError:
        pass
    else:
        # A read-only key mount must not stop a valid key from loading; the .pub is a convenience.
        with contextlib.suppress(OSError):
            _write_public_file(path, signer.verifier().key_string + "\n")
        return signer
    try:
        signer = Signer(name, _create_private_key(path))
        _write_public_file(path, signer.verifier().key_string + "\n")
    except OSError as exc:
        raise ConfigurationError(f"cannot create signing key {path}: {exc.strerror}") from None
    return signer


def read_verifier_key_file(path: str | os.PathLike[str]) -> Verifier:
    """Read a verifier from a file holding a verifier key string (as ``<key>.pub``)."""
    text = _read_small(Path(path))
    try:
        return parse_verifier_key(text.decode("utf-8").strip())
    except (UnicodeDecodeError, KeyFormatError) as exc:
        raise ConfigurationError(f"verifier key file {path}: {exc}") from None


def read_public_key_pem(path: str | os.PathLike[str], name: str) -> Verifier:
    """Read a verifier named ``name`` from a PEM (SubjectPublicKeyInfo) Ed25519 public key."""
    data = _read_small(Path(path))
    try:
        public_key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(f"public key file {path} is not a PEM public key") from None
    if not isinstance(public_key, Ed25519PublicKey):
        raise ConfigurationError(f"public key file {path} is not an Ed25519 key")
    return Verifier(name, public_key)


def _read_small(path: Path) -> bytes:
    """Return the bytes of a small file, as a ``ConfigurationError`` if it cannot be read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(data) > _MAX_KEY_FILE:
        raise ConfigurationError(f"key file {path} is too large to be a key")
    return data


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the private key at ``path``; ``FileNotFoundError`` if there is none yet."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigurationError(f"cannot read signing key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        # fstat the opened file, not the path, so a swap between check and read changes nothing.
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigurationError(f"signing key {path} is not a regular file")
        if mode & _PRIVATE_MODE_MASK:
            raise ConfigurationError(
                f"signing key {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); restrict it with: chmod 600 {path}"
            )
        data = handle.read(_MAX_KEY_FILE + 1)
    if len(data) > _MAX_KEY_FILE:
        raise ConfigurationError(f"signing key {path} is too large to be a key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Never include the file's content: it may be a key in another format.
        raise ConfigurationError(
            f"signing key {path} is not an unencrypted PKCS#8 PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"signing key {path} is not an Ed25519 key")
    return key


def _create_private_key(path: Path) -> Ed25519PrivateKey:
    """Generate a key and publish it at ``path`` without ever replacing an existing file."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temp = _write_temp(path, pem, 0o600)
    try:
        # link() fails if the name exists, unlike rename(): a key is never overwritten, and of
        # two processes creating it at once, the second one loads the first one's key.
        try:
            os.link(temp, path)
        except FileExistsError:
            return _read_private_key(path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise
            # No hard links on this filesystem: fall back to check-then-rename.
            if path.exists():
                return _read_private_key(path)
            os.rename(temp, path)
        _fsync_directory(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return key


def _write_public_file(path: Path, content: str) -> None:
    """Write ``<path>.pub`` (0644) unless it already holds ``content``."""
    public = path.with_name(path.name + ".pub")
    try:
        if public.read_text(encoding="utf-8") == content:
            return
    except (OSError, UnicodeDecodeError):
        pass  # missing or unreadable: (re)write it
    temp = _write_temp(public, content.encode("utf-8"), 0o644)
    try:
        os.replace(temp, public)  # the .pub is derived from the key, so replacing it is safe
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_directory(path.parent)


def _write_temp(target: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` to a new, fsynced temporary file beside ``target`` with ``mode``."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have removed bits we asked for
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return temp


def _fsync_directory(directory: Path) -> None:
    """Flush a directory entry change (a new or renamed file) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

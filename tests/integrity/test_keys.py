"""Ed25519 note keys: Go's key strings bit for bit, key names, and the on-disk signing key."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.errors import ConfigurationError
from trailkeeper.integrity.keys import (
    Signer,
    format_signer_key,
    format_verifier_key,
    generate_signer,
    key_id,
    load_or_create_signer,
    parse_signer_key,
    parse_verifier_key,
    read_public_key_pem,
    read_verifier_key_file,
)
from trailkeeper.integrity.note import KeyFormatError, is_valid_key_name, open_note, sign_note

# Copied from golang/mod sumdb/note/note_test.go (commit 02c991387e35f9e4c0a9b7ce137717055f8d716d):
# TestNewVerifier, TestNewSigner and TestVerifierList.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
# TestNewVerifier's two extra bad keys: wrong key length and unknown algorithm, each with a key
# ID recomputed so that only the named defect remains.
GO_BAD_LENGTH = "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
GO_BAD_ALGORITHM = "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


# -- key strings and IDs ----------------------------------------------------------------------


def test_go_verifier_key_parses_with_its_key_id() -> None:
    """Go's PeterNeumann and EnochRoot verifier keys parse, with IDs c74f20a3 and af0cfe78."""
    peter = parse_verifier_key(PETER_VKEY)
    assert (peter.name, peter.key_id) == ("PeterNeumann", 0xC74F20A3)
    enoch = parse_verifier_key(ENOCH_VKEY)
    assert (enoch.name, enoch.key_id) == ("EnochRoot", 0xAF0CFE78)


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    """key_id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key), per C2SP."""
    public = base64.b64decode(PETER_VKEY.split("+", 2)[2])[1:]
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + public).digest()[:4]
    assert key_id("PeterNeumann", public) == int.from_bytes(expected, "big") == 0xC74F20A3


def test_go_signer_key_derives_the_go_verifier_key() -> None:
    """Go's PeterNeumann signer key gives exactly Go's verifier key string and key ID."""
    signer = parse_signer_key(PETER_SKEY)
    assert (signer.name, signer.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert signer.verifier().key_string == PETER_VKEY


def test_go_key_strings_format_back_bit_for_bit() -> None:
    """Formatting the parsed Go keys gives back the exact Go strings."""
    signer = parse_signer_key(PETER_SKEY)
    assert format_signer_key(signer.name, signer.private_key) == PETER_SKEY
    verifier = parse_verifier_key(PETER_VKEY)
    assert format_verifier_key(verifier.name, verifier.public_key) == PETER_VKEY
    assert verifier.key_string == PETER_VKEY


def _manglings(key: str) -> Iterator[str]:
    """Yield every proper substring of `key` and `key` with each byte incremented (Go's tests)."""
    raw = key.encode("ascii")
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if i != 0 or j != len(raw):
                yield raw[i:j].decode("latin-1")
    for i in range(len(raw)):
        yield (raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :]).decode("latin-1")


def test_every_mangling_of_the_go_verifier_key_is_rejected() -> None:
    """Every substring and single-byte change of Go's verifier key fails (TestNewVerifier)."""
    for mangled in _manglings(PETER_VKEY):
        with pytest.raises(KeyFormatError):
            parse_verifier_key(mangled)


def test_every_mangling_of_the_go_signer_key_is_rejected() -> None:
    """Every substring and single-byte change of Go's signer key fails (TestNewSigner)."""
    for mangled in _manglings(PETER_SKEY):
        with pytest.raises(KeyFormatError):
            parse_signer_key(mangled)


def test_go_wrong_length_and_unknown_algorithm_keys_are_rejected() -> None:
    """Go's wrong-length and unknown-algorithm keys fail with errors saying which."""
    # "...BADKEY==" has non-zero padding bits, which Go's decoder ignores and ours refuses.
    with pytest.raises(KeyFormatError, match="not canonical base64"):
        parse_verifier_key(GO_BAD_LENGTH)
    with pytest.raises(KeyFormatError, match="unknown key type 0x65"):
        parse_verifier_key(GO_BAD_ALGORITHM)


def test_canonical_wrong_length_key_is_rejected() -> None:
    """A well-encoded Ed25519 key of 31 or 33 bytes is refused with its length."""
    for size in (31, 33):
        blob = b"\x01" + bytes(range(size))
        ident = hashlib.sha256(b"PeterNeumann\n" + blob).digest()[:4].hex()
        vkey = f"PeterNeumann+{ident}+{base64.b64encode(blob).decode()}"
        with pytest.raises(KeyFormatError, match=f"must be 32 bytes, got {size}"):
            parse_verifier_key(vkey)


def test_key_id_mismatch_is_named() -> None:
    """A verifier key whose ID does not match its key says what it expected."""
    with pytest.raises(KeyFormatError, match="expected c74f20a3"):
        parse_verifier_key(PETER_VKEY.replace("c74f20a3", "c74f20a4"))


def test_signer_key_errors_never_quote_the_secret() -> None:
    """A malformed signer key's error message does not contain the key material."""
    secret = PETER_SKEY.rsplit("+", 1)[1]
    for mangled in (PETER_SKEY.replace("c74f20a3", "00000000"), PETER_SKEY[:-1], PETER_SKEY[5:]):
        with pytest.raises(KeyFormatError) as caught:
            parse_signer_key(mangled)
        assert secret[:8] not in str(caught.value)


def test_key_material_is_not_in_reprs() -> None:
    """repr of a Signer or Verifier shows name and ID but no key bytes."""
    signer = parse_signer_key(PETER_SKEY)
    seed_b64 = PETER_SKEY.rsplit("+", 1)[1]
    for text in (repr(signer), repr(signer.verifier()), str(signer)):
        assert "PeterNeumann" in text
        assert seed_b64[:8] not in text
        assert "private_key" not in text


def test_uppercase_hex_key_id_is_accepted_as_in_go() -> None:
    """Go's ParseUint accepts an upper-case key ID, so parsing does too."""
    assert parse_verifier_key(PETER_VKEY.replace("c74f20a3", "C74F20A3")).key_id == 0xC74F20A3


@given(junk=st.text(max_size=120))
@settings(max_examples=500, deadline=None)
def test_random_key_strings_only_ever_raise_key_format_errors(junk: str) -> None:
    """Arbitrary text fed to the key-string parsers raises KeyFormatError, never anything else."""
    for parse in (parse_verifier_key, parse_signer_key):
        for candidate in (junk, "PeterNeumann+c74f20a3+" + junk, "PRIVATE+KEY+" + junk):
            with contextlib.suppress(KeyFormatError):
                parse(candidate)


# -- key names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["PeterNeumann", "example.com/log42", "日本語", "a\x1cb", "a\u200bb", "a\x7fb"],
    ids=["go", "url", "cjk", "file-separator", "zero-width-space", "del"],
)
def test_valid_key_names(name: str) -> None:
    """Names without Unicode White_Space or '+' are valid, as in Go (even U+001C)."""
    assert is_valid_key_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "a+b", "a b", "a\tb", "a\nb", "a\x85b", "a\xa0b", "a\u2028b", "a\u3000b", "a\ud800"],
    ids=["empty", "plus", "space", "tab", "newline", "nel", "nbsp", "line-separator",
         "ideographic-space", "surrogate"],
)
def test_invalid_key_names(name: str) -> None:
    """Empty names, '+', any Unicode space and invalid UTF-8 are refused."""
    assert not is_valid_key_name(name)
    with pytest.raises(KeyFormatError, match="invalid key name"):
        generate_signer(name)


# -- signer and verifier ----------------------------------------------------------------------


def test_generated_key_strings_round_trip_and_sign() -> None:
    """A generated key's strings parse back to a matching signer and verifier (Go's test)."""
    signer = generate_signer("EnochRoot")
    reparsed = parse_signer_key(format_signer_key(signer.name, signer.private_key))
    verifier = parse_verifier_key(signer.verifier().key_string)
    assert reparsed.key_id == verifier.key_id == signer.key_id
    message = bytearray(b"hi")
    signature = bytearray(reparsed.sign(bytes(message)))
    assert verifier.verify(bytes(message), bytes(signature))
    signature[0] ^= 1
    assert not verifier.verify(bytes(message), bytes(signature))
    signature[0] ^= 1
    message[0] ^= 1
    assert not verifier.verify(bytes(message), bytes(signature))


@pytest.mark.parametrize("length", [0, 1, 63, 65])
def test_wrong_length_signature_does_not_verify(length: int) -> None:
    """verify returns False, not an exception, for a signature of the wrong length."""
    assert not parse_verifier_key(PETER_VKEY).verify(b"hi", b"\x00" * length)


def test_same_key_under_another_name_has_another_id() -> None:
    """The key ID covers the name, so renaming a key changes its ID."""
    key = Ed25519PrivateKey.generate()
    assert Signer("a.example", key).key_id != Signer("b.example", key).key_id


# -- key files --------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_a_0600_key_a_0700_directory_and_a_0644_pub(tmp_path: Path) -> None:
    """load_or_create_signer writes a 0600 PKCS#8 PEM key, its 0700 directory and a 0644 .pub."""
    path = tmp_path / "keys" / "log.key"
    signer = load_or_create_signer(path, "example.com/log")
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    public = path.with_name("log.key.pub")
    assert _mode(public) == 0o644
    assert public.read_text() == signer.verifier().key_string + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["log.key", "log.key.pub"]


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    """Under a restrictive umask the key is still 0600 and the .pub still 0644."""
    old = os.umask(0o077)
    try:
        load_or_create_signer(tmp_path / "log.key", "example.com/log")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "log.key") == 0o600
    assert _mode(tmp_path / "log.key.pub") == 0o644


def test_second_use_loads_the_same_key(tmp_path: Path) -> None:
    """A second call returns a signer for the same key, and the file is unchanged."""
    path = tmp_path / "log.key"
    first = load_or_create_signer(path, "example.com/log")
    content = path.read_bytes()
    second = load_or_create_signer(path, "example.com/log")
    assert second.key_id == first.key_id
    assert second.verifier().key_string == first.verifier().key_string
    assert path.read_bytes() == content


def test_loading_under_another_name_keeps_the_key_and_updates_the_pub(tmp_path: Path) -> None:
    """The given name is used for the loaded key, and the .pub follows it."""
    path = tmp_path / "log.key"
    first = load_or_create_signer(path, "old.example")
    renamed = load_or_create_signer(path, "new.example")
    assert renamed.name == "new.example"
    assert renamed.private_key.private_bytes_raw() == first.private_key.private_bytes_raw()
    assert path.with_name("log.key.pub").read_text().startswith("new.example+")


def test_group_readable_key_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A 0644 private key is refused with an error naming the path and `chmod 600`."""
    path = tmp_path / "log.key"
    load_or_create_signer(path, "example.com/log")
    path.chmod(0o644)
    with pytest.raises(ConfigurationError) as caught:
        load_or_create_signer(path, "example.com/log")
    assert str(path) in caught.value.message
    assert f"chmod 600 {path}" in caught.value.message
    assert "0644" in caught.value.message


def test_existing_non_key_file_is_never_overwritten(tmp_path: Path) -> None:
    """A file that is not a key is reported, not replaced, and its content is not echoed."""
    path = tmp_path / "log.key"
    path.write_bytes(b"not a key but secret-ish\n")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="not an unencrypted PKCS#8 PEM") as caught:
        load_or_create_signer(path, "example.com/log")
    assert "secret-ish" not in caught.value.message
    assert path.read_bytes() == b"not a key but secret-ish\n"


def test_existing_key_written_elsewhere_is_used_not_replaced(tmp_path: Path) -> None:
    """A PKCS#8 Ed25519 key put in place by an operator is loaded as is."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "log.key"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    path.chmod(0o600)
    assert load_or_create_signer(path, "example.com/log").key_id == Signer(
        "example.com/log", key
    ).key_id


def test_non_ed25519_key_file_is_refused(tmp_path: Path) -> None:
    """A PEM key of another algorithm is refused, naming the path."""
    path = tmp_path / "log.key"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="not an Ed25519 key"):
        load_or_create_signer(path, "example.com/log")


def test_pub_file_reads_back_as_a_verifier_for_the_signer(tmp_path: Path) -> None:
    """read_verifier_key_file on the .pub gives a verifier that opens the signer's notes."""
    path = tmp_path / "log.key"
    signer = load_or_create_signer(path, "example.com/log")
    verifier = read_verifier_key_file(path.with_name("log.key.pub"))
    assert verifier == signer.verifier()
    assert open_note(sign_note("hello\n", signer), [verifier]).text == "hello\n"


def test_pem_public_key_file_reads_as_a_named_verifier(tmp_path: Path) -> None:
    """read_public_key_pem turns a SubjectPublicKeyInfo PEM into a verifier with the given name."""
    signer = generate_signer("example.com/log")
    pem = tmp_path / "log.pem"
    pem.write_bytes(signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    ))
    verifier = read_public_key_pem(pem, "example.com/log")
    assert verifier.key_string == signer.verifier().key_string


def test_bad_verifier_files_raise_configuration_errors(tmp_path: Path) -> None:
    """Missing, malformed or non-Ed25519 public key files raise ConfigurationError naming them."""
    missing = tmp_path / "missing.pub"
    with pytest.raises(ConfigurationError, match=r"missing\.pub"):
        read_verifier_key_file(missing)
    bad = tmp_path / "bad.pub"
    bad.write_text("PeterNeumann+00000000+AAAA\n")
    with pytest.raises(ConfigurationError, match=r"bad\.pub"):
        read_verifier_key_file(bad)
    ec_pem = tmp_path / "ec.pem"
    ec_pem.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    ))
    with pytest.raises(ConfigurationError, match="not an Ed25519 key"):
        read_public_key_pem(ec_pem, "example.com/log")
    with pytest.raises(ConfigurationError, match="not a PEM public key"):
        read_public_key_pem(bad, "example.com/log")

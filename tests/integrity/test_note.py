"""C2SP signed notes and checkpoints: Go's published vectors bit for bit, and adversarial input."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.errors import TrailkeeperError
from trailkeeper.integrity.keys import (
    Signer,
    Verifier,
    generate_signer,
    parse_signer_key,
    parse_verifier_key,
)
from trailkeeper.integrity.note import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    NoteError,
    Signature,
    UnverifiedNoteError,
    checkpoint_body,
    open_note,
    parse_checkpoint,
    sign_note,
    signed_checkpoint,
    verify_checkpoint,
)

# ---------------------------------------------------------------------------------------------
# Known-answer vectors, copied (not computed) from:
#   golang/mod  sumdb/note/note_test.go (commit 02c991387e35f9e4c0a9b7ce137717055f8d716d):
#     TestSign, TestOpen, TestVerifierList (PeterNeumann and EnochRoot keys and signatures).
#   golang/mod  sumdb/tlog/note_test.go (commit 774e77886cf18ba9e220baec8497d65b0c50373f):
#     TestFormatTree, TestParseTree.
#   C2SP/C2SP  signed-note.md (commit 055287621bf3cd13ff4394418a3e8efc2d5e8ed7) and
#     tlog-checkpoint.md (commit 2793893976c835db049c194d8f2c4f946dcb70ba): the example notes.
#   transparency-dev/formats  log/checkpoint_test.go (commit 7a6ef700ee5660b2580c9da92063af30
#     0820fdee): TestUnmarshalLogState's invalid checkpoints.
# ---------------------------------------------------------------------------------------------

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"

TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6"
    "KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33W"
    "Wd1RvMc+QQ=\n"
)
PETER = Signature(
    "PeterNeumann",
    0xC74F20A3,
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
)
ENOCH = Signature(
    "EnochRoot",
    0xAF0CFE78,
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=",
)
# TestSign's `want`.
GO_SIGNED_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6"
    "KE6RyyBwJnAM=\n"
)

# TestFormatTree / TestParseTree: the tree hash is tlog.RecordHash("hello world").
GO_TREE = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
GO_TREE_SIZE = 123456789012

C2SP_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU"
    "0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcy"
    "v2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

PETER_VERIFIER = parse_verifier_key(PETER_VKEY)
ENOCH_VERIFIER = parse_verifier_key(ENOCH_VKEY)
ROOT = hashlib.sha256(b"root").digest()


def _splice(line: str, at: int, insert: str) -> str:
    """Insert `insert` at UTF-8 byte offset `at`, as Go's `sig[:60]+"ABCD"+sig[60:]` does."""
    raw = line.encode("utf-8")
    return (raw[:at] + insert.encode("utf-8") + raw[at:]).decode("utf-8")


# -- Go's vectors -----------------------------------------------------------------------------


def test_signing_go_text_with_peter_key_gives_go_signed_note_bit_for_bit() -> None:
    """sign_note with Go's PeterNeumann signer key reproduces TestSign's note exactly."""
    assert sign_note(TEXT, parse_signer_key(PETER_SKEY)) == GO_SIGNED_NOTE
    assert GO_SIGNED_NOTE == TEXT + "\n" + PETER_SIG


def test_go_signed_note_opens_with_peter_verifier() -> None:
    """Go's signed note opens with the PeterNeumann verifier key and yields its text."""
    opened = open_note(GO_SIGNED_NOTE, [PETER_VERIFIER])
    assert opened.text == TEXT
    assert opened.signatures == (PETER,)
    assert opened.unverified == ()


def test_go_note_opens_from_bytes_too() -> None:
    """A note given as UTF-8 bytes opens exactly as the same note given as text."""
    assert open_note(GO_SIGNED_NOTE.encode("utf-8"), [PETER_VERIFIER]) == open_note(
        GO_SIGNED_NOTE, [PETER_VERIFIER]
    )


def test_doubly_signed_note_lists_the_unknown_signature_as_unverified() -> None:
    """With only Peter's key known, Enoch's signature is kept as unverified (Go TestOpen)."""
    opened = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [PETER_VERIFIER])
    assert opened.text == TEXT
    assert opened.signatures == (PETER,)
    assert opened.unverified == (ENOCH,)


def test_doubly_signed_note_verifies_both_known_signatures() -> None:
    """With both keys known, both of Go's signatures verify, in note order."""
    opened = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [PETER_VERIFIER, ENOCH_VERIFIER])
    assert opened.signatures == (PETER, ENOCH)
    assert opened.unverified == ()


def test_doubly_signed_note_verifies_with_either_key_alone() -> None:
    """A note signed by two keys opens with either key as the only trusted one."""
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [ENOCH_VERIFIER]).signatures == (ENOCH,)
    assert open_note(note, [PETER_VERIFIER]).signatures == (PETER,)


def test_note_signed_only_by_unknown_keys_is_rejected_and_lists_them() -> None:
    """With no known key, opening fails with UnverifiedNoteError carrying both signatures."""
    with pytest.raises(UnverifiedNoteError) as caught:
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    assert caught.value.unverified == (PETER, ENOCH)
    assert "no verifiable signatures" in str(caught.value)


def test_ambiguous_verifier_for_a_signature_is_an_error() -> None:
    """Two trusted verifiers with the signature's name and ID are refused (Go: ambiguous key)."""
    verifiers = [ENOCH_VERIFIER, PETER_VERIFIER, ENOCH_VERIFIER]
    with pytest.raises(NoteError, match=r"ambiguous key EnochRoot\+af0cfe78"):
        open_note(TEXT + "\n" + ENOCH_SIG, verifiers)
    # An unused duplicate does not matter, as in Go.
    assert open_note(TEXT + "\n" + PETER_SIG, verifiers).signatures == (PETER,)


@pytest.mark.parametrize("known", [[PETER_VERIFIER], []])
def test_more_than_100_signatures_are_malformed(known: list[Verifier]) -> None:
    """101 signature lines are rejected before any verification (Go TestOpen)."""
    with pytest.raises(MalformedNoteError, match="more than 100"):
        open_note(TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), known)


def test_corrupted_known_signature_is_an_invalid_signature() -> None:
    """Go's spliced Peter signature fails with an error naming the key."""
    with pytest.raises(InvalidSignatureError) as caught:
        open_note(TEXT + "\n" + _splice(PETER_SIG, 60, "ABCD"), [PETER_VERIFIER])
    assert str(caught.value) == "invalid signature for key PeterNeumann+c74f20a3"
    assert (caught.value.name, caught.value.key_id) == ("PeterNeumann", 0xC74F20A3)


def test_repeated_unknown_signatures_are_listed_once() -> None:
    """Identical unknown signature lines collapse to one; different ones are all kept (Go)."""
    enoch_abcd = Signature(
        "EnochRoot", 0xAF0CFE78, ENOCH.base64[:46] + "ABCD" + ENOCH.base64[46:]
    )
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG + ENOCH_SIG + _splice(ENOCH_SIG, 60, "ABCD")
    opened = open_note(note, [PETER_VERIFIER])
    assert opened.signatures == (PETER,)
    assert opened.unverified == (ENOCH, enoch_abcd)


def test_second_signature_by_a_known_key_is_rejected() -> None:
    """A known key signing twice is refused, where Go would skip the second line unverified."""
    with pytest.raises(MalformedNoteError, match=r"second signature by key PeterNeumann\+c74f20a3"):
        open_note(TEXT + "\n" + PETER_SIG + PETER_SIG, [PETER_VERIFIER])
    with pytest.raises(MalformedNoteError, match="second signature"):
        open_note(TEXT + "\n" + PETER_SIG + _splice(PETER_SIG, 60, "ABCD"), [PETER_VERIFIER])


@pytest.mark.parametrize(
    "message",
    [
        TEXT.encode(),
        (TEXT + "\n").encode(),
        (TEXT + "\n" + PETER_SIG[:-1]).encode(),
        ("\x01" + TEXT + "\n" + PETER_SIG).encode(),
        b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
        (TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
         "XgKvqfqdngotpRZb6KE6RyyBwJnAM=").encode(),
        (TEXT + "\n" + PETER_SIG + "Unexpected line.\n").encode(),
    ],
    ids=["no-blank-line", "no-signatures", "no-final-newline", "control-char", "bad-utf8",
         "space-in-name", "trailing-line"],
)
def test_go_bad_messages_are_malformed(message: bytes) -> None:
    """Every badMsgs entry of Go's TestOpen raises MalformedNoteError."""
    with pytest.raises(MalformedNoteError):
        open_note(message, [PETER_VERIFIER])


# -- the C2SP examples ------------------------------------------------------------------------


def test_c2sp_example_note_splits_at_the_last_blank_line() -> None:
    """The signed-note example parses, keeping its inner blank line in the text."""
    with pytest.raises(UnverifiedNoteError) as caught:
        open_note(C2SP_NOTE, [PETER_VERIFIER])
    (signature,) = caught.value.unverified
    assert signature.name == "quasimodo.example/salvatore"
    assert signature.key_id == int.from_bytes(base64.b64decode(signature.base64)[:4], "big")


def test_c2sp_example_checkpoint_body_parses() -> None:
    """The tlog-checkpoint example's text parses to its origin, size and a 32-byte root."""
    body = C2SP_CHECKPOINT[: C2SP_CHECKPOINT.index("\n\n") + 1]
    checkpoint = parse_checkpoint(body)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.body() == body
    with pytest.raises(UnverifiedNoteError):
        verify_checkpoint(C2SP_CHECKPOINT, [PETER_VERIFIER])


# -- signing ----------------------------------------------------------------------------------


class _FakeSigner:
    """A signer whose name and key ID are whatever the test says."""

    def __init__(self, name: str, key_id: int = 1) -> None:
        self.name = name
        self.key_id = key_id

    def sign(self, message: bytes) -> bytes:
        return b"\x00" * 64


@pytest.mark.parametrize(
    "text", ["", "abc", "a\tb\n", "a\rb\n", "a\x00\n", "\ud800\n"],
    ids=["empty", "no-newline", "tab", "cr", "nul", "surrogate"],
)
def test_sign_note_refuses_text_that_cannot_round_trip(text: str) -> None:
    """Empty text, text without final newline, control characters and bad UTF-8 are refused."""
    with pytest.raises(MalformedNoteError):
        sign_note(text, parse_signer_key(PETER_SKEY))


@pytest.mark.parametrize(
    "signer",
    [_FakeSigner("bad name"), _FakeSigner("a+b"), _FakeSigner(""), _FakeSigner("a\x01b"),
     _FakeSigner("ok", -1), _FakeSigner("ok", 2**32)],
    ids=["space", "plus", "empty", "control", "negative-id", "wide-id"],
)
def test_sign_note_refuses_signer_with_bad_name_or_id(signer: _FakeSigner) -> None:
    """A signer whose name or key ID cannot appear in a signature line is refused (Go)."""
    with pytest.raises(KeyFormatError):
        sign_note(TEXT, signer)


def test_sign_note_needs_between_one_and_100_distinct_signers() -> None:
    """No signer, a repeated signer, or more signers than open_note accepts are refused."""
    peter = parse_signer_key(PETER_SKEY)
    with pytest.raises(MalformedNoteError, match="at least one signer"):
        sign_note(TEXT)
    with pytest.raises(MalformedNoteError, match="given twice"):
        sign_note(TEXT, peter, peter)
    many = [_FakeSigner(f"k{i}") for i in range(MAX_SIGNATURES + 1)]
    with pytest.raises(MalformedNoteError, match="more than 100"):
        sign_note(TEXT, *many)


def test_text_lines_that_look_like_signatures_round_trip() -> None:
    """Text with blank lines and em-dash lines still opens to the same text."""
    signer = generate_signer("example.com/log")
    text = "— not a signature\n\n— PeterNeumann AAAA\n\n\n"
    opened = open_note(sign_note(text, signer), [signer.verifier()])
    assert opened.text == text


def test_same_name_with_another_key_is_ignored_as_unknown() -> None:
    """A signature by another key of the same name is unknown, not a failure (C2SP)."""
    impostor = Signer("PeterNeumann", generate_signer("x").private_key)
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note(TEXT, impostor), [PETER_VERIFIER])
    opened = open_note(sign_note(TEXT, impostor, parse_signer_key(PETER_SKEY)), [PETER_VERIFIER])
    assert opened.signatures == (PETER,)
    assert [s.name for s in opened.unverified] == ["PeterNeumann"]


_NOTE_CHARACTERS = st.characters(
    exclude_categories=["Cs"], exclude_characters=[chr(c) for c in range(0x20) if c != 0x0A]
)
note_texts = st.text(alphabet=_NOTE_CHARACTERS, max_size=200).map(lambda t: t + "\n")


@given(text=note_texts)
@settings(max_examples=200, deadline=None)
def test_any_valid_text_round_trips(text: str) -> None:
    """open_note(sign_note(text)) returns the text for every valid text."""
    signer = generate_signer("example.com/log")
    assert open_note(sign_note(text, signer), [signer.verifier()]).text == text


def test_changing_any_byte_of_the_go_note_breaks_it() -> None:
    """Replacing any single byte of Go's signed note makes open_note raise a NoteError."""
    raw = GO_SIGNED_NOTE.encode("utf-8")
    for index in range(len(raw)):
        for flip in (0x01, 0x20, 0x80):
            tampered = raw[:index] + bytes([raw[index] ^ flip]) + raw[index + 1 :]
            with pytest.raises(NoteError):
                open_note(tampered, [PETER_VERIFIER])


@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_any_single_edit_of_a_signed_checkpoint_fails(data: st.DataObject) -> None:
    """Deleting, inserting or replacing one character of a signed checkpoint never verifies."""
    note = signed_checkpoint("example.com/log", 42, ROOT, parse_signer_key(PETER_SKEY))
    index = data.draw(st.integers(0, len(note) - 1))
    char = data.draw(st.characters(exclude_categories=["Cs"]))
    edit = data.draw(st.sampled_from(["delete", "insert", "replace"]))
    if edit == "delete":
        tampered = note[:index] + note[index + 1 :]
    elif edit == "insert":
        tampered = note[:index] + char + note[index:]
    else:
        tampered = note[:index] + char + note[index + 1 :]
    if tampered == note:
        return
    with pytest.raises(NoteError):
        verify_checkpoint(tampered, [PETER_VERIFIER])


@given(junk=st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_random_text_only_ever_raises_note_errors(junk: str) -> None:
    """Arbitrary text fed to open_note, verify_checkpoint or parse_checkpoint raises NoteError."""
    for parse in (
        lambda: open_note(junk, [PETER_VERIFIER]),
        lambda: verify_checkpoint(junk, [PETER_VERIFIER]),
        lambda: parse_checkpoint(junk),
    ):
        with contextlib.suppress(NoteError):
            parse()


@given(junk=st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_ever_raise_note_errors(junk: bytes) -> None:
    """Arbitrary bytes fed to open_note raise NoteError, never anything else."""
    with pytest.raises(NoteError):
        open_note(junk, [PETER_VERIFIER])


@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from(["", "— ", "— PeterNeumann ", PETER_SIG[:-1], "0", "00", "-1", "+1",
                             "AAAA", "example.com/log", "18446744073709551616"]),
            st.text(max_size=30),
        ),
        max_size=8,
    )
)
@settings(max_examples=500, deadline=None)
def test_random_line_structures_only_ever_raise_note_errors(lines: list[str]) -> None:
    """Notes and checkpoints assembled from plausible lines raise only NoteError when bad."""
    text = "\n".join(lines) + "\n"
    for parse in (
        lambda: open_note(TEXT + "\n" + text, [PETER_VERIFIER]),
        lambda: parse_checkpoint(text),
    ):
        with contextlib.suppress(NoteError):
            parse()


def test_note_errors_are_value_errors_and_trailkeeper_errors() -> None:
    """Every note error is a ValueError and maps through the Trailkeeper error handlers."""
    for error in (MalformedNoteError, UnverifiedNoteError, InvalidSignatureError,
                  CheckpointError, KeyFormatError):
        assert issubclass(error, NoteError)
    assert issubclass(NoteError, ValueError)
    assert issubclass(NoteError, TrailkeeperError)
    assert NoteError.http_status == 400


# -- checkpoints ------------------------------------------------------------------------------


def test_go_tree_note_is_formatted_bit_for_bit() -> None:
    """checkpoint_body of Go's tree (RecordHash("hello world")) is TestFormatTree's golden."""
    record_hash = hashlib.sha256(b"\x00hello world").digest()
    assert checkpoint_body("go.sum database tree", GO_TREE_SIZE, record_hash) == GO_TREE


def test_go_tree_note_parses() -> None:
    """Go's golden tree text parses to its size and hash (TestParseTree)."""
    checkpoint = parse_checkpoint(GO_TREE)
    assert checkpoint == Checkpoint(
        "go.sum database tree", GO_TREE_SIZE, hashlib.sha256(b"\x00hello world").digest()
    )


def test_go_trailing_lines_are_extension_lines() -> None:
    """Go's goodTrees junk lines come back as extension lines, in order."""
    assert parse_checkpoint(GO_TREE + "JOE\n").extensions == ("JOE",)
    assert parse_checkpoint(GO_TREE + "JOE\n" * 1000).extensions == ("JOE",) * 1000


@pytest.mark.parametrize(
    "text",
    [
        # Go TestParseTree badTrees.
        "go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
        GO_TREE + "JOE",
        # transparency-dev/formats TestUnmarshalLogState invalid cases.
        "Head\n9944\n",
        "\n9944\ndGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ==\n",
        "Log\n123\nYmFuYW5hcw==",
        "Log\nbananas\ndGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ==\n",
        "Log\n-34\ndGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ==\n",
        "Log\n3438945738945739845734895735\ndGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ==\n",
        "Log\n123\nThisIsn'tBase64\n",
        # Accepted there, refused here: a 7-byte root and empty extension lines.
        "Log\n123\nYmFuYW5hcw==\n",
        "Log\n9944\ndGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ==\n\n\n\n",
    ],
)
def test_published_bad_checkpoints_are_rejected(text: str) -> None:
    """The invalid checkpoints of Go's and transparency-dev's tests raise CheckpointError."""
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)


GOOD_ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("size", "root"),
    [
        ("0123", GOOD_ROOT_B64),
        ("00", GOOD_ROOT_B64),
        ("+5", GOOD_ROOT_B64),
        ("-0", GOOD_ROOT_B64),
        (" 5", GOOD_ROOT_B64),
        ("5 ", GOOD_ROOT_B64),
        ("1_000", GOOD_ROOT_B64),
        ("\u0663", GOOD_ROOT_B64),  # ARABIC-INDIC DIGIT THREE: int() takes it, we do not
        (str(2**63), GOOD_ROOT_B64),
        ("9" * 20, GOOD_ROOT_B64),
        ("9" * 5000, GOOD_ROOT_B64),  # past int()'s digit limit, still our error
        ("", GOOD_ROOT_B64),
        ("5", GOOD_ROOT_B64.rstrip("=")),
        ("5", GOOD_ROOT_B64[:-2] + chr(ord(GOOD_ROOT_B64[-2]) ^ 1) + "="),  # padding bits
        ("5", base64.b64encode(ROOT[:31]).decode()),
        ("5", base64.b64encode(ROOT + b"\x00").decode()),
        ("5", ""),
        ("5", " " + GOOD_ROOT_B64),
    ],
)
def test_non_canonical_size_or_root_is_rejected(size: str, root: str) -> None:
    """Leading zeros, signs, spaces, non-ASCII digits, overflow and non-canonical base64 fail."""
    with pytest.raises(CheckpointError):
        parse_checkpoint(f"example.com/log\n{size}\n{root}\n")


def test_largest_tree_size_is_accepted() -> None:
    """2**63-1 is the largest size that parses and formats."""
    body = checkpoint_body("o", 2**63 - 1, ROOT)
    assert parse_checkpoint(body).size == 2**63 - 1


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("a\rb", 1, ROOT, ()),
        ("a\x00", 1, ROOT, ()),
        ("\udc00", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", 2**63, ROOT, ()),
        ("o", True, ROOT, ()),
        ("o", 1.0, ROOT, ()),
        ("o", 1, ROOT[:31], ()),
        ("o", 1, ROOT + b"\x00", ()),
        ("o", 1, ROOT.hex(), ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
    ],
)
def test_checkpoint_body_refuses_what_would_not_parse_back(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    """Empty or multi-line origins, out-of-range sizes, non-32-byte roots, bad extensions fail."""
    with pytest.raises(CheckpointError):
        checkpoint_body(origin, size, root, extensions)


@given(
    origin=st.text(
        alphabet=st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=50
    ),
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), min_size=1),
        max_size=3,
    ),
)
@settings(max_examples=200, deadline=None)
def test_checkpoint_body_round_trips(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    """parse_checkpoint(checkpoint_body(...)) gives back every field."""
    body = checkpoint_body(origin, size, root, extensions)
    assert parse_checkpoint(body) == Checkpoint(origin, size, root, tuple(extensions))


def test_signed_checkpoint_verifies_and_checks_its_origin() -> None:
    """A signed checkpoint verifies, and verification with the wrong origin fails."""
    signer = generate_signer("example.com/log")
    note = signed_checkpoint("example.com/log", 7, ROOT, signer, extensions=("ext",))
    expected = Checkpoint("example.com/log", 7, ROOT, ("ext",))
    assert verify_checkpoint(note, [signer.verifier()]) == expected
    assert verify_checkpoint(note, [signer.verifier()], origin="example.com/log") == expected
    with pytest.raises(CheckpointError, match=r"expected 'example\.com/other'"):
        verify_checkpoint(note, [signer.verifier()], origin="example.com/other")


def test_signed_note_that_is_not_a_checkpoint_fails_checkpoint_verification() -> None:
    """A validly signed note whose text is not a checkpoint raises CheckpointError."""
    with pytest.raises(CheckpointError):
        verify_checkpoint(GO_SIGNED_NOTE, [PETER_VERIFIER])


def test_checkpoint_signed_by_unknown_key_is_rejected() -> None:
    """A checkpoint signed only by a key the verifier does not trust is rejected."""
    note = signed_checkpoint("example.com/log", 7, ROOT, generate_signer("example.com/log"))
    with pytest.raises(UnverifiedNoteError):
        verify_checkpoint(note, [PETER_VERIFIER, generate_signer("example.com/log").verifier()])

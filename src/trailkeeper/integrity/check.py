"""Check a proof the server gave, with nothing but the public key: what an auditor's or a
SIEM's own code does with ``GET /api/v1/events/{id}/proof`` and
``GET /api/v1/checkpoints/consistency``. Pure; raises `ProofError` when something does not
hold, and names what."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trailkeeper.integrity import merkle
from trailkeeper.integrity.canonical import CanonicalError, canonical_from_line, leaf_record
from trailkeeper.integrity.note import Checkpoint, NoteError, NoteVerifier, verify_checkpoint


class ProofError(NoteError):
    """A proof, or the checkpoint it rests on, does not verify."""


def check_inclusion(line: Mapping[str, Any], proof: Mapping[str, Any],
                    verifiers: Iterable[NoteVerifier]) -> Checkpoint:
    """That the exported event ``line`` (its NDJSON object) is in the log: its leaf is
    recomputed from the line itself, the checkpoint's signature checked with ``verifiers``,
    and the path from the leaf to the signed root; the checkpoint, when all holds."""
    try:
        event_id, ts, canonical = canonical_from_line(dict(line))
    except CanonicalError as exc:
        raise ProofError(f"the event cannot be hashed: {exc}") from None
    checkpoint = _signed(proof.get("checkpoint"), verifiers)
    leaf = merkle.leaf_hash(leaf_record(event_id, ts, canonical))
    index, size = proof.get("leaf_index"), proof.get("tree_size")
    if proof.get("event_id") != event_id or size != checkpoint.size or type(index) is not int:
        raise ProofError(f"the proof is for another event or tree (event {event_id}, "
                         f"checkpoint of {checkpoint.size})")
    if not merkle.verify_inclusion(leaf, index, checkpoint.size, _hashes(proof.get("proof")),
                                   checkpoint.root):
        raise ProofError(f"event {event_id} is not leaf {index} of the signed tree of "
                         f"{checkpoint.size} events: it was changed, or the proof is false")
    return checkpoint


def check_consistency(old_note: str, new_note: str, proof: Sequence[str],
                      verifiers: Iterable[NoteVerifier]) -> tuple[Checkpoint, Checkpoint]:
    """That the log of the newer checkpoint extends the older one: nothing the older covered
    was changed or removed since."""
    keys = list(verifiers)
    old, new = _signed({"note": old_note}, keys), _signed({"note": new_note}, keys)
    if old.origin != new.origin:
        raise ProofError(f"the checkpoints are of two logs: {old.origin!r}, {new.origin!r}")
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, _hashes(proof)):
        raise ProofError(f"the tree of {new.size} events does not extend the one of "
                         f"{old.size}: the log was rewritten")
    return old, new


def _signed(checkpoint: Any, verifiers: Iterable[NoteVerifier]) -> Checkpoint:
    note = checkpoint.get("note") if isinstance(checkpoint, Mapping) else None
    if not isinstance(note, str):
        raise ProofError("no signed checkpoint note to check the proof against")
    try:
        return verify_checkpoint(note, verifiers)
    except NoteError as exc:
        raise ProofError(f"the checkpoint does not verify: {exc}") from None


def _hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise ProofError("the proof is not a list of base64 hashes")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, ValueError):
        raise ProofError("the proof is not a list of base64 hashes") from None

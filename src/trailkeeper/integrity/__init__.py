"""Tamper evidence for the audit log: an RFC 6962 / RFC 9162 Merkle tree over stored events,
signed C2SP checkpoints, proofs, and the checks that need only the public key.

For code that checks what a server says (docs/integrity.md):

    from trailkeeper.integrity import check_inclusion, parse_verifier_key
    key = parse_verifier_key(open("checkpoint.key.pub").read().strip())
    checkpoint = check_inclusion(exported_line, proof_json, [key])   # raises ProofError
"""

from trailkeeper.integrity.check import ProofError, check_consistency, check_inclusion
from trailkeeper.integrity.keys import parse_verifier_key, read_verifier_key_file

__all__ = [
    "ProofError",
    "check_consistency",
    "check_inclusion",
    "parse_verifier_key",
    "read_verifier_key_file",
]

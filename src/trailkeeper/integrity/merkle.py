"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification with SHA-256.

Pure functions of their inputs (no I/O). The tree shape is fixed by the number of leaves:

    MTH({})     = SHA-256()
    MTH({d0})   = SHA-256(0x00 || d0)                           leaf hash
    MTH(D[n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k = largest power of two < n

The functions that build trees and proofs take *leaf hashes* (already ``leaf_hash``-ed) and
raise ``ValueError`` on programming errors. The verifiers take only hashes and sizes, follow the
iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, and never raise on malformed input:
anything out of range or of the wrong shape simply fails verification (``False``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "SubtreeHash",
    "consistency_path",
    "consistency_proof",
    "fold",
    "inclusion_path",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: MTH({}): the root of the empty tree, SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes and indices are uint64 in every CT/tlog wire format; larger values are malformed.
_MAX_SIZE = 2**64 - 1

#: ``subtree(lo, hi)`` returns MTH(D[lo:hi]) of the tree being proved, for the ranges the proof
#: algorithms ask for: ``lo < hi``, and either a complete subtree (``hi - lo`` a power of two
#: that divides ``lo``) or one ending at the tree's right edge.
SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH of the tree whose leaves have the given hashes (``EMPTY_ROOT`` if none)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    n = len(leaf_hashes)
    if n & (n - 1) == 0:  # a complete tree (a full tile, say): level by level, no recursion
        level = list(leaf_hashes)
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]
    return _subtree_root(leaf_hashes, 0, n)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path ``PATH(index, D[n])`` of RFC 9162 §2.1.3.1, leaf to root.

    Raises ``ValueError`` unless ``0 <= index < len(leaf_hashes)``.
    """
    return inclusion_path(len(leaf_hashes), index,
                          lambda lo, hi: _subtree_root(leaf_hashes, lo, hi))


def inclusion_path(size: int, index: int, subtree: SubtreeHash) -> list[bytes]:
    """`inclusion_proof` of a tree of ``size`` leaves known only through ``subtree``
    (stored nodes, say): O(log n) calls."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is out of range for a tree of size {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()  # built root-to-leaf; the RFC lists it leaf-to-root
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return ``PROOF(old_size, D[n])`` of RFC 9162 §2.1.4.1 for ``n = len(leaf_hashes)``.

    The proof is empty when ``old_size == n`` (a tree is consistent with itself) and when
    ``old_size == 0`` (the empty tree is a prefix of every tree). Raises ``ValueError`` unless
    ``0 <= old_size <= n``.
    """
    return consistency_path(old_size, len(leaf_hashes),
                            lambda lo, hi: _subtree_root(leaf_hashes, lo, hi))


def consistency_path(old_size: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """`consistency_proof` of a tree of ``size`` leaves known only through ``subtree``."""
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size} is out of range for a tree of size {size}")
    if old_size == 0:
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, size, old_size, True  # complete: m is the size PROOF was asked for
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(subtree(lo, hi))
    proof.reverse()  # SUBPROOF appends on the way back up: deepest node first
    return proof


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a tree given as its complete subtrees from left to right, each smaller than
    the one before (a compact range: one subtree per set bit of the size)."""
    if not hashes:
        return EMPTY_ROOT
    r = hashes[-1]
    for h in reversed(hashes[:-1]):
        r = node_hash(h, r)
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return whether ``proof`` shows the leaf at ``index`` is in the tree ``(tree_size, root)``.

    RFC 9162 §2.1.3.2. Never raises: malformed input returns ``False``.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_size(index) and _is_size(tree_size)):
        return False
    if index >= tree_size or not all(_is_hash(p) for p in proof):
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return whether ``proof`` shows tree ``(old_size, old_root)`` is a prefix of the new one.

    RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``. Equal sizes need an empty proof and equal
    roots; the empty tree (``old_size == 0``, root ``EMPTY_ROOT``) needs an empty proof. Never
    raises: malformed input returns ``False``.
    """
    if not (_is_hash(old_root) and _is_hash(new_root)):
        return False
    if not (_is_size(old_size) and _is_size(new_size)) or old_size > new_size:
        return False
    if not all(_is_hash(c) for c in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root and (old_size > 0 or old_root == EMPTY_ROOT)
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:  # step 1
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: first is an exact power of two
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root  # step 7


def _split(n: int) -> int:
    """Return the largest power of two strictly less than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """Return MTH of the non-empty range ``leaf_hashes[lo:hi]`` without copying it."""
    if hi - lo == 1:
        return leaf_hashes[lo]
    k = _split(hi - lo)
    return node_hash(_subtree_root(leaf_hashes, lo, lo + k), _subtree_root(leaf_hashes, lo + k, hi))


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_SIZE

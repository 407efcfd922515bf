"""The RFC 6962 / RFC 9162 Merkle tree: published CT vectors bit for bit, and proof properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.integrity.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------
# Known-answer vectors, copied (not computed) from the Certificate Transparency reference tests:
#   google/certificate-transparency  cpp/merkletree/merkle_tree_test.cc
#     (commit 0e901cacd1388fa16f78b184612f6cd16e5ceec1): kInputs, kSHA256EmptyTreeHash,
#     kSHA256Roots, kSHA256Paths, kSHA256Proofs.
#   transparency-dev/merkle  testonly/constants.go
#     (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1): LeafInputs, NodeHashes, RootHashes.
#   transparency-dev/merkle  testonly/reference_test.go
#     (commit 141d627eab770a7e9a2514f46a8b6338e6d90874): TestRefInclusionProof (0-based index).
#   transparency-dev/merkle  proof/verify_test.go
#     (commit 02194e9afb6c1d95b5381350007963aa70fff472): consistencyProofs, incl. {6, 7}.
# The C++ and Go files list paths with a 1-based leaf number; below they are 0-based indices.
# ---------------------------------------------------------------------------------------------

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

# RootHashes() / kSHA256EmptyTreeHash + kSHA256Roots: index = tree size, 0..8.
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

# NodeHashes() level 0: the leaf hashes of LEAF_INPUTS.
LEAF_HASHES = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    )
]

# NodeHashes() levels 1-3: (level, position) -> hash of the complete subtree.
NODE_HASHES = {
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 1): "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

# (index, tree size, path): kSHA256Paths {1,8} {6,8} {3,3} {2,5} and {1,1}, plus
# TestRefInclusionProof {0,2} {1,2}.
INCLUSION_VECTORS: list[tuple[int, int, list[str]]] = [
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

# (old size, new size, proof): kSHA256Proofs, plus consistencyProofs {6, 7} from verify_test.go.
CONSISTENCY_VECTORS: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

# verify_test.go sha256SomeHash: a well-formed hash that is no node of the test tree.
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hashes(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def test_leaf_hashes_match_the_published_node_hashes() -> None:
    """leaf_hash of each CT test input is the published level-0 node hash."""
    assert [leaf_hash(d) for d in LEAF_INPUTS] == LEAF_HASHES


def test_interior_node_hashes_match_the_published_complete_subtrees() -> None:
    """node_hash over the published children gives each published complete-subtree hash."""
    levels = [LEAF_HASHES]
    for level in (1, 2, 3):
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below), 2)])
        for pos, got in enumerate(levels[level]):
            assert got.hex() == NODE_HASHES[(level, pos)]


@pytest.mark.parametrize("size", range(9))
def test_roots_for_sizes_0_to_8_match_the_published_roots(size: int) -> None:
    """MTH of the first `size` CT test leaves is the published root, including the empty tree."""
    assert root([leaf_hash(d) for d in LEAF_INPUTS[:size]]) == ROOTS[size]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    """MTH({}) is SHA-256 of the empty string (RFC 9162 §2.1.1)."""
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest() == ROOTS[0]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_the_published_paths(index: int, size: int, path: list[str]) -> None:
    """inclusion_proof reproduces each published audit path, which then verifies."""
    proof = inclusion_proof(LEAF_HASHES[:size], index)
    assert proof == _hashes(path)
    assert verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_the_published_proofs(old: int, new: int, path: list[str]) -> None:
    """consistency_proof reproduces each published proof, which then verifies."""
    proof = consistency_proof(LEAF_HASHES[:new], old)
    assert proof == _hashes(path)
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@pytest.mark.parametrize(("index", "size", "path"), [v for v in INCLUSION_VECTORS if v[2]])
def test_published_inclusion_proofs_reject_the_ct_corruptions(
    index: int, size: int, path: list[str]
) -> None:
    """The corruptions of CT's VerifierCheck / corruptInclusionProof all fail to verify."""
    proof, good_root, leaf = _hashes(path), ROOTS[size], LEAF_HASHES[index]
    assert verify_inclusion(leaf, index, size, proof, good_root)  # the baseline verifies
    probes: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (leaf, index - 1, size, proof, good_root),
        (leaf, index + 1, size, proof, good_root),
        (leaf, index ^ 2, size, proof, good_root),
        (leaf, index, size * 2, proof, good_root),
        (leaf, index, size // 2, proof, good_root),
        (leaf_hash(b"WrongLeaf"), index, size, proof, good_root),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, proof, SOME_HASH),
        (leaf, index, size, [*proof, b""], good_root),
        (leaf, index, size, [*proof, good_root], good_root),
        (leaf, index, size, [b"", *proof], good_root),
        (leaf, index, size, [good_root, *proof], good_root),
        (leaf, index, size, proof[:-1], good_root),
    ]
    for i in range(len(proof)):
        probes.append((leaf, index, size, [*proof[:i], EMPTY_ROOT, *proof[i + 1 :]], good_root))
        flipped = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        probes.append((leaf, index, size, [*proof[:i], flipped, *proof[i + 1 :]], good_root))
    if len(proof) > 1:
        probes.append((leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], good_root))
    for probe in probes:
        assert not verify_inclusion(*probe), probe


@pytest.mark.parametrize(("old", "new", "path"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_published_consistency_proofs_reject_the_ct_corruptions(
    old: int, new: int, path: list[str]
) -> None:
    """The corruptions of CT's VerifierConsistencyCheck / corruptConsistencyProof all fail."""
    proof, r1, r2 = _hashes(path), ROOTS[old], ROOTS[new]
    assert verify_consistency(old, new, r1, r2, proof)  # the baseline verifies
    wrong = hashlib.sha256(b"WrongRoot").digest()
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, wrong, r2, proof),
        (old, new, r1, wrong, proof),
        (old, new, b"WrongRoot", r2, proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, b""]),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [*proof, proof[-1]]),
        (old, new, r1, r2, [b"", *proof]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        probes.append((old, new, r1, r2, [*proof[:i], EMPTY_ROOT, *proof[i + 1 :]]))
        flipped = bytes([proof[i][0] ^ 16]) + proof[i][1:]
        probes.append((old, new, r1, r2, [*proof[:i], flipped, *proof[i + 1 :]]))
    for probe in probes:
        assert not verify_consistency(*probe), probe


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_in_impossible_positions_never_verifies(index: int, size: int) -> None:
    """CT's VerifyPath invalid cases: empty trees, out-of-range leaves, mismatched root/leaf."""
    assert not verify_inclusion(SOME_HASH, index, size, [], b"")
    assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


def test_single_leaf_tree_proves_inclusion_with_an_empty_path() -> None:
    """In a one-leaf tree the root is the leaf hash and the proof is empty."""
    h = leaf_hash(b"data")
    assert root([h]) == h
    assert inclusion_proof([h], 0) == []
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)


def test_trivial_consistency_cases() -> None:
    """Equal sizes need equal roots and no proof; the empty tree is a prefix of every tree."""
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 1, EMPTY_ROOT, ROOTS[1], [])
    assert verify_consistency(0, 8, EMPTY_ROOT, ROOTS[8], [])
    assert verify_consistency(1, 1, ROOTS[1], ROOTS[1], [])
    # Time travel to the past.
    assert not verify_consistency(1, 0, ROOTS[1], EMPTY_ROOT, [])
    assert not verify_consistency(2, 1, ROOTS[2], ROOTS[1], [])
    # An empty proof between different sizes.
    assert not verify_consistency(1, 2, ROOTS[1], ROOTS[2], [])
    # Roots that do not match.
    assert not verify_consistency(0, 0, EMPTY_ROOT, SOME_HASH, [])
    assert not verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])
    assert not verify_consistency(1, 1, ROOTS[1], SOME_HASH, [])
    assert not verify_consistency(0, 1, SOME_HASH, ROOTS[1], [])
    # Matching roots but a non-empty proof.
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(0, 1, EMPTY_ROOT, ROOTS[1], [EMPTY_ROOT])
    assert not verify_consistency(1, 1, ROOTS[1], ROOTS[1], [EMPTY_ROOT])


def test_generators_reject_programming_errors() -> None:
    """Proof generators raise ValueError for indices and sizes outside the tree."""
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof([], 0)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(LEAF_HASHES, 8)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(LEAF_HASHES, -1)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(LEAF_HASHES, 9)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(LEAF_HASHES, -1)
    assert consistency_proof(LEAF_HASHES, 0) == []
    assert consistency_proof([], 0) == []


# ---------------------------------------------------------------------------------------------
# Properties over random trees.
# ---------------------------------------------------------------------------------------------


def _leaves(n: int, seed: bytes) -> list[bytes]:
    """Distinct pseudo-random leaf hashes (distinct leaves: swapped children always differ)."""
    return [leaf_hash(seed + i.to_bytes(2, "big")) for i in range(n)]


def _ref_root(hashes: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written directly from the definition with list slices."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(_ref_root(hashes[:k]), _ref_root(hashes[k:]))


def _flip(value: bytes, pos: int, mask: int) -> bytes:
    pos %= len(value)
    return value[:pos] + bytes([value[pos] ^ mask]) + value[pos + 1 :]


sizes = st.integers(min_value=1, max_value=300)
seeds = st.binary(min_size=0, max_size=8)
masks = st.integers(min_value=1, max_value=255)
positions = st.integers(min_value=0, max_value=31)
fast = settings(deadline=None, max_examples=150)


@fast
@given(n=st.integers(min_value=0, max_value=300), seed=seeds)
def test_root_matches_the_recursive_definition(n: int, seed: bytes) -> None:
    """root() equals MTH written straight from the RFC for every size 0..300."""
    hashes = _leaves(n, seed)
    assert root(hashes) == _ref_root(hashes)


@fast
@given(n=sizes, seed=seeds, data=st.data())
def test_every_inclusion_proof_verifies_and_any_tampering_fails(
    n: int, seed: bytes, data: st.DataObject
) -> None:
    """A generated inclusion proof verifies; a flipped byte or a wrong index or size does not."""
    hashes = _leaves(n, seed)
    tree_root = root(hashes)
    i = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    proof = inclusion_proof(hashes, i)
    leaf = hashes[i]
    assert verify_inclusion(leaf, i, n, proof, tree_root)
    assert len(proof) <= max(n - 1, 0).bit_length()

    pos, mask = data.draw(positions, label="byte"), data.draw(masks, label="mask")
    if proof:
        k = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
        bad = [*proof[:k], _flip(proof[k], pos, mask), *proof[k + 1 :]]
        assert not verify_inclusion(leaf, i, n, bad, tree_root)
        assert not verify_inclusion(leaf, i, n, proof[:-1], tree_root)
    assert not verify_inclusion(_flip(leaf, pos, mask), i, n, proof, tree_root)
    assert not verify_inclusion(leaf, i, n, proof, _flip(tree_root, pos, mask))
    assert not verify_inclusion(leaf, i, n, [*proof, SOME_HASH], tree_root)

    if n > 1:
        j = data.draw(st.integers(min_value=0, max_value=n - 2), label="other index")
        j += j >= i  # any index but i
        assert not verify_inclusion(leaf, j, n, proof, tree_root)
    assert not verify_inclusion(leaf, n + i, n, proof, tree_root)

    # A different tree size fails whenever its audit path has a different shape. (Some sizes
    # share the shape and the verifier cannot tell -- harmless, as a checkpoint signs the
    # size together with the root.)
    m = data.draw(st.integers(min_value=i + 1, max_value=2 * n + 2).filter(lambda m: m != n))
    if len(inclusion_proof(_leaves(m, b"x"), i)) != len(proof):
        assert not verify_inclusion(leaf, i, m, proof, tree_root)


@fast
@given(n=sizes, seed=seeds, data=st.data())
def test_every_consistency_proof_verifies_and_any_tampering_fails(
    n: int, seed: bytes, data: st.DataObject
) -> None:
    """A generated consistency proof for 1 <= m <= n verifies; any tampering makes it fail."""
    hashes = _leaves(n, seed)
    m = data.draw(st.integers(min_value=1, max_value=n), label="old size")
    old_root, new_root = root(hashes[:m]), root(hashes)
    proof = consistency_proof(hashes, m)
    assert verify_consistency(m, n, old_root, new_root, proof)

    pos, mask = data.draw(positions, label="byte"), data.draw(masks, label="mask")
    assert not verify_consistency(m, n, _flip(old_root, pos, mask), new_root, proof)
    assert not verify_consistency(m, n, old_root, _flip(new_root, pos, mask), proof)
    assert not verify_consistency(m, n, old_root, new_root, [*proof, SOME_HASH])
    if m == n:
        assert proof == []
        return
    assert proof
    k = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
    bad = [*proof[:k], _flip(proof[k], pos, mask), *proof[k + 1 :]]
    assert not verify_consistency(m, n, old_root, new_root, bad)
    assert not verify_consistency(m, n, old_root, new_root, proof[:-1])
    assert not verify_consistency(m, n, old_root, new_root, [])
    assert not verify_consistency(m, n, new_root, old_root, proof)
    # A tree that really differs from the old one inside its first m leaves is not a prefix.
    forged = list(hashes)
    forged[data.draw(st.integers(min_value=0, max_value=m - 1), label="edited")] = SOME_HASH
    assert not verify_consistency(m, n, old_root, root(forged), consistency_proof(forged, m))
    # Another pair of sizes fails whenever its proof has a different shape.
    m2 = data.draw(st.integers(min_value=1, max_value=n - 1), label="other old size")
    m2 += m2 >= m  # any size in 1..n but m
    if len(consistency_proof(hashes, m2)) != len(proof):
        assert not verify_consistency(m2, n, old_root, new_root, proof)


@fast
@given(n=st.integers(min_value=0, max_value=300), seed=seeds)
def test_the_empty_tree_is_consistent_with_every_tree(n: int, seed: bytes) -> None:
    """From size 0 the proof is empty and verifies only against the empty-tree root."""
    hashes = _leaves(n, seed)
    assert consistency_proof(hashes, 0) == []
    assert verify_consistency(0, n, EMPTY_ROOT, root(hashes), [])
    assert not verify_consistency(0, n, SOME_HASH, root(hashes), [])
    assert not verify_consistency(0, n, EMPTY_ROOT, root(hashes), [EMPTY_ROOT])
    assert not verify_inclusion(EMPTY_ROOT, 0, 0, [], EMPTY_ROOT)


hostile_ints = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.booleans())
hostile_proof = st.lists(st.one_of(st.binary(max_size=40), st.binary(min_size=32, max_size=32)))


@fast
@given(
    leaf=st.binary(max_size=40),
    index=hostile_ints,
    size=hostile_ints,
    proof=hostile_proof,
    tree_root=st.binary(max_size=40),
)
def test_inclusion_verifier_never_raises_on_hostile_input(
    leaf: bytes, index: int, size: int, proof: list[bytes], tree_root: bytes
) -> None:
    """Arbitrary sizes, hash lengths and proof lists give False (or True), never an exception."""
    assert verify_inclusion(leaf, index, size, proof, tree_root) in (True, False)


@fast
@given(
    old=hostile_ints,
    new=hostile_ints,
    old_root=st.binary(max_size=40),
    new_root=st.binary(max_size=40),
    proof=hostile_proof,
)
def test_consistency_verifier_never_raises_on_hostile_input(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    """Arbitrary sizes, hash lengths and proof lists give False (or True), never an exception."""
    assert verify_consistency(old, new, old_root, new_root, proof) in (True, False)

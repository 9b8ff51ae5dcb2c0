"""RFC 6962 / RFC 9162 Merkle tree: reference vectors and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barbacana.audit import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's reference leaves and tree heads (the test data of
# transparency-dev/merkle, published for RFC 6962 implementations).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (2, 8): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def reference_root(entries: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 §2.1, recursively, on raw entries."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    left, right = reference_root(entries[:k]), reference_root(entries[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def entries(n: int, salt: int = 0) -> list[bytes]:
    return [f"event-{salt}-{i}".encode() for i in range(n)]


class TestVectors:
    """The implementation reproduces Certificate Transparency's published values."""

    def test_roots(self) -> None:
        """Every tree head of sizes 0..8 matches."""
        leaves = [leaf_hash(e) for e in CT_LEAVES]
        for size, expected in enumerate(CT_ROOTS):
            assert root_hash(leaves[:size]).hex() == expected

    @pytest.mark.parametrize(("index", "size"), sorted(CT_INCLUSION))
    def test_inclusion(self, index: int, size: int) -> None:
        """Audit paths are the published ones, and verify."""
        leaves = [leaf_hash(e) for e in CT_LEAVES]
        proof = inclusion_proof(index, leaves, size)
        assert [p.hex() for p in proof] == CT_INCLUSION[(index, size)]
        assert verify_inclusion(index, size, leaves[index], proof, bytes.fromhex(CT_ROOTS[size]))

    @pytest.mark.parametrize(("first", "second"), sorted(CT_CONSISTENCY))
    def test_consistency(self, first: int, second: int) -> None:
        """Consistency proofs are the published ones, and verify."""
        leaves = [leaf_hash(e) for e in CT_LEAVES]
        proof = consistency_proof(first, leaves, second)
        assert [p.hex() for p in proof] == CT_CONSISTENCY[(first, second)]
        assert verify_consistency(
            first, second, bytes.fromhex(CT_ROOTS[first]), bytes.fromhex(CT_ROOTS[second]), proof
        )


class TestRoot:
    """Roots agree with the naive recursive definition."""

    @given(st.lists(st.binary(max_size=40), max_size=300))
    @settings(max_examples=150, deadline=None)
    def test_root_matches_reference(self, data: list[bytes]) -> None:
        """root_hash equals RFC 6962's recursive MTH for any list of entries."""
        assert root_hash([leaf_hash(d) for d in data]) == reference_root(data)

    @given(st.integers(min_value=0, max_value=130))
    @settings(max_examples=60, deadline=None)
    def test_compact_range_every_prefix(self, n: int) -> None:
        """Appending one by one, the compact range's root is right after every append."""
        data = entries(n)
        frontier = CompactRange()
        for i, item in enumerate(data):
            frontier.append(leaf_hash(item))
            assert frontier.size == i + 1
            assert len(frontier.hashes) == (i + 1).bit_count()
        assert frontier.root() == reference_root(data)

    def test_compact_range_round_trip(self) -> None:
        """Stored as bytes plus size, the compact range comes back equal."""
        frontier = CompactRange()
        frontier.extend(leaf_hash(e) for e in entries(45))
        again = CompactRange.from_bytes(45, frontier.to_bytes())
        assert again == frontier
        assert again.root() == frontier.root()

    @pytest.mark.parametrize(("size", "count"), [(3, 1), (4, 2), (1, 0), (-1, 0)])
    def test_compact_range_refuses_wrong_shape(self, size: int, count: int) -> None:
        """A compact range needs exactly one hash per set bit of its size."""
        with pytest.raises(ValueError, match="compact range"):
            CompactRange(size, [b"\x00" * 32] * count)


class TestInclusion:
    """Inclusion proofs (RFC 9162 §2.1.3)."""

    @given(st.integers(min_value=1, max_value=70), st.data())
    @settings(max_examples=80, deadline=None)
    def test_every_leaf_verifies_and_a_wrong_leaf_fails(self, n: int, data: st.DataObject) -> None:
        """Every leaf's path verifies; another leaf, index, size or path does not."""
        leaves = [leaf_hash(e) for e in entries(n)]
        root = root_hash(leaves)
        wrong_leaf = leaf_hash(b"not in the tree")
        for index in range(n):
            proof = inclusion_proof(index, leaves)
            assert verify_inclusion(index, n, leaves[index], proof, root)
            assert not verify_inclusion(index, n, wrong_leaf, proof, root)
        index = data.draw(st.integers(min_value=0, max_value=n - 1))
        proof = inclusion_proof(index, leaves)
        if n > 1:
            other = data.draw(
                st.integers(min_value=0, max_value=n - 1).filter(lambda i: i != index)
            )
            assert not verify_inclusion(other, n, leaves[index], proof, root)
            assert not verify_inclusion(index, n, leaves[other], proof, root)
        bigger = [*leaves, leaf_hash(b"one more")]
        assert not verify_inclusion(index, n + 1, leaves[index], proof, root_hash(bigger))
        if proof:
            position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
            tampered = list(proof)
            tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
            assert not verify_inclusion(index, n, leaves[index], tampered, root)
            assert not verify_inclusion(index, n, leaves[index], proof[:-1], root)
        assert not verify_inclusion(index, n, leaves[index], [*proof, leaf_hash(b"x")], root)

    def test_out_of_range(self) -> None:
        """No proof for a leaf outside the tree; no verification either."""
        leaves = [leaf_hash(e) for e in entries(5)]
        with pytest.raises(ValueError, match="not in a tree"):
            inclusion_proof(5, leaves)
        assert not verify_inclusion(5, 5, leaves[0], [], root_hash(leaves))
        assert not verify_inclusion(-1, 5, leaves[0], [], root_hash(leaves))


class TestConsistency:
    """Consistency proofs (RFC 9162 §2.1.4)."""

    def test_every_pair_up_to_40(self) -> None:
        """For every 0 <= m <= n <= 40 the proof verifies, and fails once history changed."""
        leaves = [leaf_hash(e) for e in entries(40)]
        roots = [root_hash(leaves[:n]) for n in range(41)]
        for n in range(41):
            for m in range(n + 1):
                proof = consistency_proof(m, leaves, n)
                assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
                if 0 < m < n:
                    # History rewritten: leaf m-1 of the old tree is different now.
                    rewritten = list(leaves)
                    rewritten[m - 1] = leaf_hash(b"rewritten")
                    new_root = root_hash(rewritten[:n])
                    forged = consistency_proof(m, rewritten, n)
                    assert not verify_consistency(m, n, roots[m], new_root, forged), (m, n)
                    assert not verify_consistency(m, n, roots[m], new_root, proof), (m, n)

    @given(st.integers(min_value=2, max_value=90), st.data())
    @settings(max_examples=80, deadline=None)
    def test_any_change_before_m_is_caught(self, n: int, data: st.DataObject) -> None:
        """Changing, dropping or reordering any of the first m leaves breaks consistency."""
        m = data.draw(st.integers(min_value=1, max_value=n - 1))
        changed = data.draw(st.integers(min_value=0, max_value=m - 1))
        leaves = [leaf_hash(e) for e in entries(n)]
        old_root = root_hash(leaves[:m])
        variants = []
        rewritten = list(leaves)
        rewritten[changed] = leaf_hash(b"changed")
        variants.append(rewritten)
        variants.append(leaves[:changed] + leaves[changed + 1 :] + [leaf_hash(b"pad")])
        if changed + 1 < n:
            swapped = list(leaves)
            swapped[changed], swapped[changed + 1] = swapped[changed + 1], swapped[changed]
            variants.append(swapped)
        for variant in variants:
            proof = consistency_proof(m, variant, n)
            assert not verify_consistency(m, n, old_root, root_hash(variant), proof)

    def test_degenerate_cases(self) -> None:
        """From empty anything follows with an empty proof; equal sizes need equal roots."""
        leaves = [leaf_hash(e) for e in entries(8)]
        root8, root4 = root_hash(leaves), root_hash(leaves[:4])
        empty = hashlib.sha256(b"").digest()
        assert verify_consistency(0, 8, empty, root8, [])
        assert not verify_consistency(0, 8, empty, root8, [root4])
        assert verify_consistency(4, 4, root4, root4, [])
        assert not verify_consistency(4, 4, root4, root8, [])
        assert not verify_consistency(8, 4, root8, root4, [])
        assert not verify_consistency(3, 8, root_hash(leaves[:3]), root8, [])
        with pytest.raises(ValueError, match="no consistency proof"):
            consistency_proof(9, leaves, 8)

"""RFC 6962 / RFC 9162 Merkle tree hashes, compact ranges and proofs.

Pure functions over *leaf hashes* (already ``SHA-256(0x00 || data)``), so they
serve the trail, the verifier and a standalone auditor alike:

- :func:`leaf_hash`, :func:`node_hash`: the domain-separated hashes of RFC 6962
  §2.1 (``0x00`` for leaves, ``0x01`` for interior nodes), which make a leaf and
  a node impossible to confuse (no second-preimage through the tree shape).
- :class:`CompactRange`: the right edge ("frontier") of a tree: one hash per
  set bit of its size, enough to append a leaf in O(log n) and to compute the
  root without reading any earlier leaf.
- :func:`inclusion_proof` / :func:`verify_inclusion`: RFC 9162 §2.1.3.
- :func:`consistency_proof` / :func:`verify_consistency`: RFC 9162 §2.1.4: a
  tree of size ``m`` is a prefix of the tree of size ``n`` -- the log only grew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: The root of the empty tree: ``SHA-256()`` of nothing (RFC 6962 §2.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``MTH({d}) = SHA-256(0x00 || d)`` (RFC 6962 §2.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)`` (RFC 6962 §2.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``): RFC 6962's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The frontier of a Merkle tree: the roots of its perfect subtrees, left to right.

    A tree of size ``n`` is a sequence of perfect subtrees whose sizes are the
    set bits of ``n``, largest first; their roots are all that is needed to
    append (merge equal-sized neighbours, like binary addition) and to compute
    the tree head (fold right to left).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self._size = size
        self._hashes = list(hashes)
        if size < 0 or len(self._hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} has {size.bit_count()} hashes")
        if any(len(h) != HASH_SIZE for h in self._hashes):
            raise ValueError("compact range hashes are 32 bytes")

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Subtree roots, largest subtree first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the right edge, in O(log n)."""
        n, h = self._size, leaf
        while n & 1:
            h = node_hash(self._hashes.pop(), h)
            n >>= 1
        self._hashes.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The Merkle tree head of the leaves covered so far."""
        if not self._hashes:
            return EMPTY_ROOT
        h = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        """The subtree roots concatenated (the size is stored beside them)."""
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Rebuild from :meth:`to_bytes` and the size.

        Raises:
            ValueError: ``data`` does not hold one hash per set bit of ``size``.
        """
        if len(data) % HASH_SIZE:
            raise ValueError("compact range data is not a whole number of hashes")
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree head of a list of leaf hashes (RFC 6962 §2.1)."""
    frontier = CompactRange()
    frontier.extend(leaves)
    return frontier.root()


def _subtree(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    frontier = CompactRange()
    for i in range(lo, hi):
        frontier.append(leaves[i])
    return frontier.root()


def inclusion_proof(index: int, leaves: Sequence[bytes], size: int | None = None) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    RFC 9162 §2.1.3.1 (RFC 6962 §2.1.1 ``PATH``), deepest sibling first. Work is
    O(size): each sibling subtree is hashed once.

    Raises:
        ValueError: ``index`` is not a leaf of that tree.
    """
    n = len(leaves) if size is None else size
    if not 0 <= index < n <= len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of size {n}")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_subtree(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(first: int, leaves: Sequence[bytes], size: int | None = None) -> list[bytes]:
    """Proof that the tree of ``first`` leaves is a prefix of the tree of ``size`` leaves.

    RFC 9162 §2.1.4.1 (RFC 6962 §2.1.2 ``PROOF``/``SUBPROOF``). Empty when
    ``first`` is 0 or equals ``size``.

    Raises:
        ValueError: ``first`` is larger than ``size``.
    """
    n = len(leaves) if size is None else size
    if not 0 <= first <= n <= len(leaves):
        raise ValueError(f"no consistency proof from size {first} to size {n}")
    if first in (0, n):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_subtree(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree(leaves, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(_subtree(leaves, lo, hi))
    proof.reverse()
    return proof


def _valid(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``.

    RFC 9162 §2.1.3.2, step by step.
    """
    if not (_valid(leaf, root, *proof) and 0 <= index < size):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``(first, first_root)`` is a prefix of ``(second, ...)``.

    RFC 9162 §2.1.4.2, with its two trivial cases made explicit: from the empty
    tree anything follows (the proof is empty), and a tree is consistent with
    itself only with an empty proof and equal roots.
    """
    if not (_valid(first_root, second_root, *proof) and 0 <= first <= second):
        return False
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0

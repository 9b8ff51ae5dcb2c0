"""The standalone verifier: proofs checked with only the public key and a kept checkpoint."""

from __future__ import annotations

import copy

import pytest

from barbacana.audit import (
    Actor,
    AuditKey,
    AuditProofError,
    AuditSettings,
    AuditTrail,
    Checkpoint,
    build_proof,
    consistency_proof,
    read_checkpoints,
    verify_consistency_proof,
    verify_proof,
)
from barbacana.audit._store import MemoryAuditStore


async def filled(n: int, key: AuditKey | None = None) -> tuple[AuditTrail, MemoryAuditStore]:
    settings = AuditSettings(log_events=False, checkpoint_every_events=1000)
    store = MemoryAuditStore(key)
    trail = AuditTrail(store, settings=settings, key=store.key)
    for i in range(n):
        await trail.record("order.created", actor=Actor.user(f"u{i}"), outcome="success")
    return trail, store


async def proof_for(store: MemoryAuditStore, seq: int, older: Checkpoint | None = None) -> dict:
    checkpoint = await store.checkpoint_if_due(force=True) or (await store.checkpoints())[-1]
    rows = await store.rows(after_seq=seq - 1, limit=1)
    leaves = await store.leaf_hashes(checkpoint.tree_size)
    return build_proof(seq, rows[0].body, leaves, checkpoint, older)


class TestVerifyProof:
    async def test_inclusion_and_consistency(self) -> None:
        """A proof verifies against the kept checkpoint with only the public key."""
        _, store = await filled(10)
        kept = await store.checkpoint_if_due(force=True)
        assert kept is not None
        exported = read_checkpoints([kept.to_line()])[0]
        trail = AuditTrail(store, settings=AuditSettings(log_events=False), key=store.key)
        for i in range(13):
            await trail.record("auth.logout", actor=Actor.user(f"v{i}"), outcome="success")
        document = await proof_for(store, 7, older=exported)
        public = AuditKey.generate().public_key  # a stranger's key: refused below
        result = verify_proof(document, store.key.public_key, trusted=exported)
        assert result.event.seq == 7
        assert result.checkpoint.tree_size == 23
        assert result.consistent_with == exported
        with pytest.raises(AuditProofError, match="not by the given public key"):
            verify_proof(document, public)

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda d: d.__setitem__("event", d["event"].replace('"u3"', '"u4"')),
            lambda d: d.__setitem__("seq", 4),
            lambda d: d["inclusion"].__setitem__(0, "00" * 32),
            lambda d: d["inclusion"].pop(),
            lambda d: d["checkpoint"].__setitem__("root_hash", "11" * 32),
            lambda d: d["checkpoint"].__setitem__("tree_size", 11),
            lambda d: d.__setitem__("type", "something/else"),
            lambda d: d.__setitem__("inclusion", "not a list"),
        ],
    )
    async def test_any_alteration_fails(self, mutate) -> None:
        """Event, position, path and signed head are all bound together."""
        _, store = await filled(12)
        document = await proof_for(store, 3)
        verify_proof(document, store.key.public_key)
        broken = copy.deepcopy(document)
        mutate(broken)
        with pytest.raises(AuditProofError):
            verify_proof(broken, store.key.public_key)

    async def test_history_rewritten(self) -> None:
        """A trail rebuilt from another history does not extend the kept checkpoint."""
        key = AuditKey.generate()
        _, honest = await filled(8, key)
        kept = await honest.checkpoint_if_due(force=True)
        assert kept is not None
        # The same key signs a different history (the attacker rebuilt the trail).
        trail, forged = await filled(0, key)
        forged._head = forged._head.__class__(  # same trail id: a rewrite of "the" trail
            kept.origin, key.key_id, 0, forged._head.frontier, 0, 0
        )
        for i in range(12):
            await trail.record("order.created", actor=Actor.user(f"x{i}"), outcome="success")
        document = await proof_for(forged, 2)
        checkpoint = Checkpoint.from_json(document["checkpoint"])
        leaves = await forged.leaf_hashes(12)
        proof = consistency_proof(8, leaves, 12)
        with pytest.raises(AuditProofError, match="history was rewritten"):
            verify_consistency_proof(kept, checkpoint, proof, key.public_key)
        with pytest.raises(AuditProofError, match="does not show"):
            verify_proof(document, key.public_key, trusted=kept)

    async def test_shrunk(self) -> None:
        """A newer checkpoint smaller than the kept one means the trail shrank."""
        _, store = await filled(5)
        small = await store.checkpoint_if_due(force=True)
        trail = AuditTrail(store, settings=AuditSettings(log_events=False), key=store.key)
        await trail.record("order.created", actor=Actor.system(), outcome="success")
        big = await store.checkpoint_if_due(force=True)
        assert small is not None
        assert big is not None
        with pytest.raises(AuditProofError, match="shrank"):
            verify_consistency_proof(big, small, [], store.key.public_key)

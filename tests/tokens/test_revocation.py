"""RevocationState: jti, sid and subject cut-offs."""

from __future__ import annotations

import math

import pytest

from barbacana.tokens import AccessClaims, RevocationState

from .helpers import NOW, FakeClock


def claims(
    jti: str = "j1", sid: str | None = "s1", sub: str = "alice", iat: float = NOW
) -> AccessClaims:
    return AccessClaims(
        sub=sub,
        scope=frozenset(),
        roles=(),
        client_id="web",
        jti=jti,
        sid=sid,
        iat=iat,
        exp=iat + 600,
        iss="i",
        aud=("a",),
        raw={},
    )


class TestRules:
    """Each kind of entry voids what it should, and nothing else."""

    def test_nothing_revoked(self) -> None:
        """An empty state revokes nothing."""
        assert not RevocationState().is_revoked(claims())

    def test_jti(self) -> None:
        """A revoked jti voids that token only."""
        state = RevocationState()
        state.revoke_jti("j1", NOW + 600)
        assert state.is_revoked(claims("j1"))
        assert not state.is_revoked(claims("j2"))

    def test_sid(self) -> None:
        """A revoked sid voids every token of the family; tokens without sid are unaffected."""
        state = RevocationState()
        state.revoke_sid("s1", NOW + 600)
        assert state.is_revoked(claims("j1", "s1"))
        assert state.is_revoked(claims("j2", "s1"))
        assert not state.is_revoked(claims("j3", "s2"))
        assert not state.is_revoked(claims("j4", None))

    def test_subject_cut_off(self) -> None:
        """Tokens with iat strictly before the cut-off are void."""
        state = RevocationState()
        state.revoke_subject("alice", NOW)
        assert state.is_revoked(claims(iat=NOW - 1))
        assert not state.is_revoked(claims(iat=NOW))
        assert not state.is_revoked(claims(sub="bob", iat=NOW - 1))

    def test_cut_off_only_moves_forward(self) -> None:
        """An older cut-off arriving late does not shorten a newer one."""
        state = RevocationState()
        state.revoke_subject("alice", NOW)
        state.revoke_subject("alice", NOW - 100)
        assert state.is_revoked(claims(iat=NOW - 50))

    @pytest.mark.parametrize("value", [math.nan, math.inf])
    def test_non_finite_times(self, value: float) -> None:
        """Times must be finite."""
        with pytest.raises(ValueError, match="finite"):
            RevocationState().revoke_jti("j", value)
        with pytest.raises(ValueError, match="finite"):
            RevocationState().revoke_subject("alice", value)


class TestPruning:
    """Entries are forgotten once nothing they match can still be valid."""

    def test_prune(self) -> None:
        """Expired jti and sid entries go; open-ended ones and cut-offs stay."""
        clock = FakeClock()
        state = RevocationState(clock=clock)
        state.revoke_jti("old", NOW + 10)
        state.revoke_jti("forever")
        state.revoke_sid("fam", NOW + 20)
        state.revoke_subject("alice", NOW)
        clock.advance(15)
        assert state.prune() == 1
        assert len(state) == 3
        assert state.prune(NOW + 20) == 1
        assert state.is_revoked(claims("forever", None))
        assert state.is_revoked(claims("x", None, iat=NOW - 1))

    def test_later_until_wins(self) -> None:
        """Revoking again with a later until keeps the entry longer."""
        state = RevocationState()
        state.revoke_jti("j", NOW + 10)
        state.revoke_jti("j", NOW + 100)
        state.revoke_jti("j", NOW + 50)
        state.prune(NOW + 60)
        assert state.is_revoked(claims("j"))

    def test_forget(self) -> None:
        """An operator can undo an entry."""
        state = RevocationState()
        state.revoke_jti("j1")
        state.revoke_sid("s1")
        state.revoke_subject("alice", NOW + 1)
        state.forget(jti="j1", sid="s1", sub="alice")
        assert not state.is_revoked(claims())
        assert len(state) == 0
        assert "0" in repr(state)

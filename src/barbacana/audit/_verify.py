"""Verify a stored trail: recompute the tree, check every signature, name the first bad event.

What each check catches (an attacker who can write the database, but not read
the audit key files):

- *sequence continuity* — a gap is a deleted event; a row past the head is an
  inserted one;
- *leaf hash* (RFC 6962 §2.1) of the canonical bytes — a changed event whose
  stored hash was left alone;
- *event MAC* (``HMAC(seq || leaf)``, key outside the database) — a changed
  event whose hash was recomputed, and a row moved to another position;
- the ``seq`` inside each event — a reordering, or events renumbered after a
  deletion or an insertion;
- *signed checkpoints* (from the database, and exported ones kept elsewhere) —
  each root must equal the recomputed root at its size; one larger than the
  trail proves it was truncated, and they need no HMAC key to be checked.

Without the HMAC key (``--public-key`` only), a change whose hash was
recomputed is still caught by the next checkpoint, but located only to the
range between two checkpoints.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._checkpoint import Checkpoint
from ._events import AuditEvent
from ._keys import event_mac, key_id
from ._merkle import CompactRange, leaf_hash
from ._store import AuditStore, StoredRow, expected_columns
from .errors import AuditError, AuditProofError

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify_trail"]

ProblemKind = Literal[
    "changed", "deleted", "inserted", "reordered", "truncated", "checkpoint", "head"
]


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with a trail, at a sequence number."""

    seq: int
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of :func:`verify_trail`."""

    size: int
    checkpoints_checked: int
    latest_checkpoint: Checkpoint | None
    macs_checked: bool
    problem: Problem | None = None
    #: Events after the newest valid checkpoint: not yet covered by a signature.
    uncovered: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether the trail verified."""
        return self.problem is None


@dataclass(slots=True)
class _Row:
    row: StoredRow
    event: AuditEvent | None
    leaf_ok: bool
    mac_ok: bool

    @property
    def body_seq(self) -> int | None:
        return None if self.event is None else self.event.seq

    @property
    def authentic(self) -> bool:
        return self.event is not None and self.leaf_ok and self.mac_ok


def _inspect(row: StoredRow, mac_key: bytes | None) -> _Row:
    try:
        event: AuditEvent | None = AuditEvent.from_canonical(row.body)
    except AuditError:
        event = None
    leaf_ok = hmac.compare_digest(leaf_hash(row.body), row.leaf_hash)
    mac_ok = True
    if mac_key is not None:
        position = row.seq if event is None or not isinstance(event.seq, int) else event.seq
        mac_ok = position >= 0 and hmac.compare_digest(
            event_mac(mac_key, position, row.leaf_hash), row.mac
        )
    return _Row(row, event, leaf_ok, mac_ok)


def _diagnose(current: _Row, following: _Row | None, expected: int) -> Problem | None:
    """What is wrong with the row at ``expected``, if anything (looking one row ahead)."""
    seq, body_seq = current.row.seq, current.body_seq
    if current.authentic and body_seq == seq:
        if current.event is not None:
            columns = expected_columns(current.event)
            for name, value in columns.items():
                if current.row.columns.get(name) != value:
                    return Problem(
                        seq, "changed", f"the stored column {name!r} differs from the hashed event"
                    )
        return None
    if current.authentic and body_seq is not None:
        shift = body_seq - seq
        if (
            following is not None
            and following.authentic
            and following.body_seq == following.row.seq + shift
            and shift > 0
        ):
            return Problem(
                seq,
                "deleted",
                f"event(s) {seq}..{body_seq - 1} were deleted and later events renumbered "
                f"(position {seq} holds event {body_seq})",
            )
        if body_seq < expected and not (following is not None and following.body_seq == seq):
            return Problem(seq, "inserted", f"position {seq} holds a copy of event {body_seq}")
        if body_seq < expected:
            return Problem(
                seq,
                "inserted",
                f"position {seq} holds a copy of event {body_seq}; the original event {seq} "
                "follows it",
            )
        return Problem(seq, "reordered", f"position {seq} holds event {body_seq}")
    if following is not None and following.authentic and following.body_seq == seq:
        return Problem(
            seq,
            "inserted",
            f"the event at {seq} is not part of the trail; the original event {seq} "
            f"was pushed to position {following.row.seq}",
        )
    if current.event is None:
        why = "it is not a valid event"
    elif not current.leaf_ok:
        why = "it does not match its stored leaf hash"
    else:
        why = "its MAC does not match (the event or its hash was rewritten)"
    return Problem(seq, "changed", f"the stored event was altered: {why}")


async def verify_trail(
    store: AuditStore,
    public_key: Ed25519PublicKey,
    *,
    mac_key: bytes | None = None,
    exported: Iterable[Checkpoint] = (),
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 5000,
) -> VerifyReport:
    """Recompute the trail's tree and check it against every signed checkpoint.

    Args:
        store: The trail (read access is enough).
        public_key: The audit public key that signs its checkpoints.
        mac_key: The derived event-MAC key (from the HMAC key file) to locate
            rewritten events exactly; without it, only checkpoints locate them.
        exported: Checkpoints kept outside the trail (``export --checkpoints``).
        progress: Called with ``(events done, events expected)``.
        batch_size: Rows read per query.

    Returns:
        A report whose ``problem`` names the first bad sequence number, if any.

    Raises:
        AuditTrailNotFoundError: There is no trail to verify.
    """
    head = await store.head()
    problems: list[Problem] = []
    notes: list[str] = []
    expected_key = key_id(public_key)
    if head.key_id is not None and head.key_id != expected_key:
        problems.append(
            Problem(0, "head", f"the trail names audit key {head.key_id}, not {expected_key}")
        )

    by_size: dict[int, list[tuple[Checkpoint, str]]] = {}
    checked = 0
    sources = [(c, "stored") for c in await store.checkpoints()]
    sources += [(c, "exported") for c in exported]
    for checkpoint, source in sources:
        checked += 1
        try:
            checkpoint.verify(public_key)
        except AuditProofError as exc:
            problems.append(Problem(checkpoint.tree_size, "checkpoint", f"{source} {exc.detail}"))
            continue
        if checkpoint.origin != head.trail_id:
            problems.append(
                Problem(
                    checkpoint.tree_size,
                    "checkpoint",
                    f"the {source} checkpoint at size {checkpoint.tree_size} belongs to another "
                    f"trail ({checkpoint.origin})",
                )
            )
            continue
        by_size.setdefault(checkpoint.tree_size, []).append((checkpoint, source))

    frontier = CompactRange()
    expected, last_good, latest = 0, 0, None
    for checkpoint, _ in by_size.get(0, []):
        latest = checkpoint
    event_problem: Problem | None = None
    total = head.size

    while event_problem is None:
        rows = await store.rows(after_seq=expected - 1, limit=batch_size)
        if not rows:
            current_head = await store.head()
            if current_head.size > expected and current_head.size != total:
                total = current_head.size  # the trail grew while we read: keep going
                continue
            head = current_head
            break
        inspected = [_inspect(r, mac_key) for r in rows]
        for index, item in enumerate(inspected):
            row = item.row
            if row.seq > expected:
                event_problem = Problem(
                    expected,
                    "deleted",
                    f"event {expected} is missing"
                    if row.seq == expected + 1
                    else f"events {expected}..{row.seq - 1} are missing",
                )
                break
            following = inspected[index + 1] if index + 1 < len(inspected) else None
            if following is None and not (item.authentic and item.body_seq == row.seq):
                more = await store.rows(after_seq=row.seq, limit=1)
                following = _inspect(more[0], mac_key) if more else None
            event_problem = _diagnose(item, following, expected)
            if event_problem is not None:
                break
            frontier.append(row.leaf_hash)
            expected += 1
            for checkpoint, source in by_size.get(expected, []):
                if frontier.root() != checkpoint.root_hash:
                    event_problem = Problem(
                        last_good,
                        "changed",
                        f"events {last_good}..{expected - 1} do not match the {source} checkpoint "
                        f"signed at size {expected}: one of them was changed, inserted or removed",
                    )
                    break
                last_good, latest = expected, checkpoint
            if event_problem is not None:
                break
            if progress is not None and expected % 1000 == 0:
                progress(expected, max(total, expected))
    if progress is not None:
        progress(expected, max(total, expected))

    if event_problem is not None:
        problems.append(event_problem)
    else:
        if expected < head.size:
            problems.append(
                Problem(
                    expected,
                    "truncated",
                    f"the trail ends at {expected} events but its head says {head.size}",
                )
            )
        elif expected > head.size:
            problems.append(
                Problem(
                    head.size,
                    "inserted",
                    f"{expected - head.size} event(s) stored after the head of the trail "
                    f"(size {head.size})",
                )
            )
        elif frontier != head.frontier:
            problems.append(
                Problem(expected, "head", "the stored head does not match the recomputed tree")
            )
        longer = [size for size in by_size if size > expected]
        if longer:
            checkpoint, source = by_size[max(longer)][0]
            problems.append(
                Problem(
                    expected,
                    "truncated",
                    f"the trail has {expected} events, but the {source} checkpoint signed at "
                    f"{checkpoint.timestamp} says it had {checkpoint.tree_size}",
                )
            )
    if mac_key is None:
        notes.append("event MACs not checked (no HMAC key): changes are located per checkpoint")
    problem = min(problems, key=lambda p: p.seq) if problems else None
    latest_size = latest.tree_size if latest is not None else 0
    return VerifyReport(
        size=expected,
        checkpoints_checked=checked,
        latest_checkpoint=latest,
        macs_checked=mac_key is not None,
        problem=problem,
        uncovered=max(expected - latest_size, 0),
        notes=tuple(notes),
    )

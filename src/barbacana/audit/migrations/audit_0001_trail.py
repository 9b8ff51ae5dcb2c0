"""Audit trail: append-only events and checkpoints, and the shared tree head.

The database itself refuses UPDATE, DELETE (and, on PostgreSQL, TRUNCATE) on
the trail, refuses an event whose ``seq`` is not the next one, and refuses a
head that shrinks or changes trail or key. Someone who can drop triggers can
still edit rows: that is what the Merkle tree, the event MACs and the signed
checkpoints are for.

Revision ID: audit_0001
Revises:
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END""",
    """CREATE TRIGGER audit_events_next_seq BEFORE INSERT ON audit_events
       WHEN NEW.seq <> (SELECT COALESCE(MAX(seq), -1) + 1 FROM audit_events)
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: seq is not the next'); END""",
    """CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: DELETE refused'); END""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
       BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END""",
    """CREATE TRIGGER audit_head_only_grows BEFORE UPDATE ON audit_head
       WHEN NEW.size < OLD.size OR NEW.checkpoint_size < OLD.checkpoint_size
         OR NEW.trail_id <> OLD.trail_id OR NEW.id <> OLD.id
         OR (OLD.key_id IS NOT NULL AND NEW.key_id IS NOT OLD.key_id)
       BEGIN SELECT RAISE(ABORT, 'audit_head only grows'); END""",
]

_POSTGRESQL = [
    """CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
           USING ERRCODE = 'insufficient_privilege';
       END $$""",
    """CREATE FUNCTION audit_next_seq() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.seq <> (SELECT COALESCE(MAX(seq), -1) + 1 FROM audit_events) THEN
           RAISE EXCEPTION 'audit_events is append-only: seq % is not the next number', NEW.seq
             USING ERRCODE = 'integrity_constraint_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE FUNCTION audit_head_only_grows() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.size < OLD.size OR NEW.checkpoint_size < OLD.checkpoint_size
            OR NEW.trail_id <> OLD.trail_id OR NEW.id <> OLD.id
            OR (OLD.key_id IS NOT NULL AND NEW.key_id IS DISTINCT FROM OLD.key_id) THEN
           RAISE EXCEPTION 'audit_head only grows' USING ERRCODE = 'insufficient_privilege';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
       FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_events_next_seq BEFORE INSERT ON audit_events
       FOR EACH ROW EXECUTE FUNCTION audit_next_seq()""",
    """CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
       FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
       FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
       FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
       FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_head_only_grows BEFORE UPDATE ON audit_head
       FOR EACH ROW EXECUTE FUNCTION audit_head_only_grows()""",
]


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("service", sa.String, nullable=True),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("actor_type", sa.String, nullable=False),
        sa.Column("actor_id", sa.String, nullable=True),
        sa.Column("resource", sa.Text, nullable=True),
        sa.Column("request_id", sa.String, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
        sa.Column("mac", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("seq >= 0", name="audit_events_seq_non_negative"),
    )
    op.create_index("ix_audit_events_ts_us", "audit_events", ["ts_us"])
    op.create_index("ix_audit_events_action_seq", "audit_events", ["action", "seq"])
    op.create_index("ix_audit_events_actor_seq", "audit_events", ["actor_id", "seq"])
    op.create_index("ix_audit_events_outcome_seq", "audit_events", ["outcome", "seq"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String, nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("trail_id", sa.String, nullable=False),
        sa.Column("key_id", sa.String, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="audit_head_single_row"),
    )
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "trail_id": str(uuid.uuid4()),
                "key_id": None,
                "size": 0,
                "frontier": b"",
                "checkpoint_size": 0,
                "checkpoint_us": 0,
            }
        ],
    )
    statements = _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the audit trail is append-only: it is never downgraded")

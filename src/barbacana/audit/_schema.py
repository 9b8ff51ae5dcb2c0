"""The audit tables, as SQLAlchemy Core objects (the migrations create them).

- ``audit_events``: one row per event, append-only. ``body`` holds the exact
  canonical bytes that were hashed; the other columns repeat some of its fields
  for queries, and the verifier checks that they agree with ``body``.
- ``audit_checkpoints``: signed tree heads, append-only.
- ``audit_head``: one row, the shared head of the tree (size and compact range),
  locked by every append so that several processes keep one gap-free sequence.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, String, Table, Text

__all__ = ["HEAD_ID", "checkpoints_table", "events_table", "head_table", "metadata"]

metadata = MetaData()
HEAD_ID = 1

events_table = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("service", String, nullable=True),
    Column("action", String, nullable=False),
    Column("outcome", String, nullable=False),
    Column("actor_type", String, nullable=False),
    Column("actor_id", String, nullable=True),
    Column("resource", Text, nullable=True),
    Column("request_id", String, nullable=True),
    Column("body", Text, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("mac", LargeBinary, nullable=False),
)

checkpoints_table = Table(
    "audit_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("key_id", String, nullable=False),
    Column("statement", Text, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

head_table = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("trail_id", String, nullable=False),
    Column("key_id", String, nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
    Column("checkpoint_size", BigInteger, nullable=False),
    Column("checkpoint_us", BigInteger, nullable=False),
)

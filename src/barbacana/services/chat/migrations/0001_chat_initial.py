"""Private chat rooms and their members.

Revision ID: chat_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "chat_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_rooms",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "chat_members",
        sa.Column("room", sa.String(64), sa.ForeignKey("chat_rooms.name"), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("added_at", sa.Float, nullable=False),
    )
    op.create_index("ix_chat_members_user_id", "chat_members", ["user_id"])


def downgrade() -> None:
    op.drop_table("chat_members")
    op.drop_table("chat_rooms")

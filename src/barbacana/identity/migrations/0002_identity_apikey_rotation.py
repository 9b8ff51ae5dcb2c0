"""API-key rotation: the replacing key and the end of the old key's overlap.

Revision ID: identity_0002
Revises: identity_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: existing keys were never rotated, nothing to backfill.
    op.add_column("api_keys", sa.Column("replaced_by", sa.String(16), nullable=True))
    op.add_column("api_keys", sa.Column("retire_at", sa.Float, nullable=True))


def downgrade() -> None:
    # The old schema has no overlap window: a rotated key must not come back to life,
    # so it stops working now instead of at the end of its window.
    op.execute(
        "UPDATE api_keys SET revoked_at = retire_at "
        "WHERE retire_at IS NOT NULL AND revoked_at IS NULL"
    )
    # Batch mode: SQLite rebuilds the table where it cannot drop a column in place.
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("retire_at")
        batch.drop_column("replaced_by")

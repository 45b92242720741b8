"""Sightings keep their track: id and time window, for the "two faces at once" rule and replies.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Data fix-ups in a migration run as the owner, whom FORCE ROW LEVEL SECURITY also binds: without a
tenant every row is invisible and an UPDATE silently touches nothing. The backfill therefore lifts
FORCE for its own statement and restores it in the same transaction.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE sightings ADD COLUMN track_id text, ADD COLUMN last_seen_at timestamptz, "
        "ADD COLUMN opened_visit boolean NOT NULL DEFAULT false"
    )
    op.execute("ALTER TABLE sightings NO FORCE ROW LEVEL SECURITY")
    op.execute(
        "UPDATE sightings SET track_id = coalesce(track_id, ce_id), "
        "last_seen_at = coalesce(last_seen_at, captured_at)"
    )
    op.execute("ALTER TABLE sightings FORCE ROW LEVEL SECURITY")
    op.execute(
        "ALTER TABLE sightings ALTER COLUMN track_id SET NOT NULL, "
        "ALTER COLUMN last_seen_at SET NOT NULL, "
        "ADD CONSTRAINT sightings_window CHECK (last_seen_at >= captured_at)"
    )
    # Who else was in front of this camera at the same time (exclusion), by camera and time.
    op.execute(
        "CREATE INDEX sightings_camera_window ON sightings (tenant_id, camera_id, captured_at) "
        "INCLUDE (last_seen_at, customer_id, track_id)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS sightings_camera_window")
    op.execute(
        "ALTER TABLE sightings DROP CONSTRAINT IF EXISTS sightings_window, "
        "DROP COLUMN IF EXISTS track_id, DROP COLUMN IF EXISTS last_seen_at, "
        "DROP COLUMN IF EXISTS opened_visit"
    )

"""Hours whose statistics are out of date, written in the same transaction as the visit change.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

A transactional outbox for the aggregate function: ingest marks the UTC hour of every visit it
opens or moves (and the hour it moved from); the aggregate function drains the marks under a
per-tenant lock and recomputes those hours from the visits. A lost or late ``visit.recorded`` can
no longer leave a report short: the mark stays until an aggregation has committed the hour.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    app = op.get_context().config.attributes["app_role"]  # type: ignore[union-attr]
    op.execute(
        """
        CREATE TABLE stats_dirty (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            site_id uuid NOT NULL,
            hour timestamptz NOT NULL CHECK (date_trunc('hour', hour) = hour),
            marked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (tenant_id, site_id, hour)
        );
        COMMENT ON TABLE stats_dirty IS
            'UTC hours of a site whose hourly statistics must be recomputed (aggregate drains it)';
        """
    )
    op.execute("ALTER TABLE stats_dirty ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE stats_dirty FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON stats_dirty "
        "USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON stats_dirty TO {app}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS stats_dirty")

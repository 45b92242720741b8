"""Distinct visitors per period, precomputed: distinct counts do not add up, so the report of a
month must not count a month of raw visits on every request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21

One row per (site, granularity, local period start); ``site_id`` = the nil UUID holds the
tenant-wide count (a person who visits two stores in a month counts once). Maintained with the
hourly statistics by the aggregate function.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    app = op.get_context().config.attributes["app_role"]  # type: ignore[union-attr]
    op.execute(
        """
        CREATE TABLE visit_uniques (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            site_id uuid NOT NULL,
            granularity text NOT NULL CHECK (granularity IN ('hour', 'day', 'week', 'month')),
            period timestamp NOT NULL,
            unique_visitors integer NOT NULL CHECK (unique_visitors >= 0),
            refreshed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, site_id, granularity, period)
        );
        COMMENT ON COLUMN visit_uniques.site_id IS
            'a site, or 00000000-0000-0000-0000-000000000000 for every site of the tenant';
        """
    )
    op.execute("ALTER TABLE visit_uniques ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE visit_uniques FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON visit_uniques "
        "USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON visit_uniques TO {app}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS visit_uniques")

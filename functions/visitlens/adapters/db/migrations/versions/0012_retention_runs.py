"""Retention runs: when each tenant's raw snapshots were last purged, and what survived.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Knative refuses a revision timeout above ``max-revision-timeout-seconds`` (600 s by default), so
``purge`` works within a time budget: an hourly tick purges the tenants whose last run is oldest
(never-purged first) until its budget is spent, and the rest wait for the next tick. This table is
that queue's state, one row per tenant, written in the tenant's purge transaction.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE retention_runs (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    finished_at timestamptz NOT NULL,
    objects_deleted integer NOT NULL CHECK (objects_deleted >= 0),
    survivors_remaining integer NOT NULL CHECK (survivors_remaining >= 0)
);
COMMENT ON TABLE retention_runs IS
    'the last finished raw-snapshot purge of each tenant (purge picks the oldest first)';
"""

VISIBLE = "tenant_id = app_current_tenant() OR app_is_system_admin()"


def upgrade() -> None:
    app = op.get_context().config.attributes["app_role"]  # type: ignore[union-attr]
    op.execute(SCHEMA)
    op.execute("ALTER TABLE retention_runs ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE retention_runs FORCE ROW LEVEL SECURITY")
    # a tenant's purge writes its own row; the system scope reads every row (the queue's order,
    # the metrics) and never writes one
    op.execute(
        "CREATE POLICY tenant_write ON retention_runs FOR ALL "
        "USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
    )
    op.execute(f"CREATE POLICY system_read ON retention_runs FOR SELECT USING ({VISIBLE})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON retention_runs TO {app}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS retention_runs")

"""The retention state for the database's own metrics exporter.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

A gauge set by the ``purge`` pod vanishes when Knative scales it to zero, so an alert on it can
never hold for an hour. The state lives in PostgreSQL (``retention_runs``), and CloudNativePG's
exporter, on every instance and always up, reads it at scrape time through this function
(``charts/components/postgres/metrics.yaml``): its queries run as ``postgres`` with the
``pg_monitor`` role, which may call this function and nothing else of ours. The audit-chain
verification that follows each tenant's purge is kept beside its run, for the same reason. It
returns counts only — no tenant, no id — and reads every tenant as the system does (``SECURITY DEFINER``, the
system scope set for its own query and the caller's put back).
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

FUNCTION = """
ALTER TABLE retention_runs ADD COLUMN audit_chain_problems integer NOT NULL DEFAULT 0
    CHECK (audit_chain_problems >= 0);
COMMENT ON COLUMN retention_runs.audit_chain_problems IS
    'problems the verification after the last purge found in the tenant''s audit chain';
CREATE FUNCTION retention_state(
    OUT tenants bigint, OUT never_purged bigint, OUT oldest_run_age_seconds double precision,
    OUT survivors_remaining bigint, OUT audit_chain_problems bigint
)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    caller_scope text := current_setting('app.system_admin', true);
BEGIN
    -- the system scope for this query only (row-level security lets it see every tenant), then
    -- the caller's own back: it must not leak into the rest of the caller's transaction
    PERFORM set_config('app.system_admin', 'on', true);
    SELECT count(*),
           count(*) FILTER (WHERE r.finished_at IS NULL),
           coalesce(max(extract(epoch FROM now() - coalesce(r.finished_at, t.created_at))), 0),
           coalesce(sum(r.survivors_remaining), 0),
           coalesce(sum(r.audit_chain_problems), 0)
      INTO tenants, never_purged, oldest_run_age_seconds, survivors_remaining,
           audit_chain_problems
      FROM public.tenants t LEFT JOIN public.retention_runs r ON r.tenant_id = t.id;
    PERFORM set_config('app.system_admin', coalesce(caller_scope, ''), true);
END
$$;
COMMENT ON FUNCTION retention_state() IS
    'counts for the metrics exporter: how long the longest-waiting tenant has gone unpurged';
REVOKE ALL ON FUNCTION retention_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention_state() TO pg_monitor;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS retention_state()")
    op.execute("ALTER TABLE retention_runs DROP COLUMN IF EXISTS audit_chain_problems")

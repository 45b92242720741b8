"""Hourly visit statistics, merges (and their undo), not-same-person marks, anonymous visits after
an erasure, and a tamper-evident audit log (a SHA-256 hash chain per tenant).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

- ``visit_stats_hourly``: one row per site and *local* hour (the site's time zone), re-materialised
  idempotently from ``visits`` by the aggregate function; anonymous counts only.
- ``visits.customer_id`` may become NULL: erasing a person keeps their visits as anonymous counts.
- ``merges`` keeps what a merge moved, so that ``unmerge`` can split it back out exactly.
- ``audit_log`` gains ``seq``, ``prev_hash`` and ``hash``: a BEFORE INSERT trigger chains each row
  to the previous row of the same tenant under an advisory lock; ``visitlens audit verify``
  recomputes the chain and finds an edited or deleted row. The app role still may only INSERT.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE visit_stats_hourly (
    tenant_id uuid NOT NULL,
    site_id uuid NOT NULL,
    local_hour timestamp NOT NULL,
    visits integer NOT NULL CHECK (visits >= 0),
    new_visits integer NOT NULL CHECK (new_visits >= 0),
    unique_visitors integer NOT NULL CHECK (unique_visitors >= 0),
    dwell_s_sum double precision NOT NULL DEFAULT 0,
    dwell_hist integer[] NOT NULL,
    female integer NOT NULL DEFAULT 0,
    male integer NOT NULL DEFAULT 0,
    age_bands jsonb NOT NULL DEFAULT '{}',
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, site_id, local_hour),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    CHECK (new_visits <= visits)
);
COMMENT ON COLUMN visit_stats_hourly.local_hour IS
    'start of the hour in the site''s time zone (visits attributed by their start)';
COMMENT ON COLUMN visit_stats_hourly.dwell_hist IS
    'visits per dwell bucket: <1, 1-5, 5-15, 15-30, 30-60, >=60 minutes';

-- Report queries over all sites of a tenant by time.
CREATE INDEX visit_stats_hourly_time ON visit_stats_hourly (tenant_id, local_hour);
-- Visit lists and distinct visitors per period.
CREATE INDEX visits_site_time_customer ON visits (tenant_id, site_id, started_at)
    INCLUDE (customer_id, is_new, ended_at);

ALTER TABLE visits ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE visits DROP CONSTRAINT visits_tenant_id_customer_id_fkey;
ALTER TABLE visits ADD CONSTRAINT visits_tenant_id_customer_id_fkey
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
    ON DELETE SET NULL (customer_id);

CREATE TABLE merges (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kept_id uuid NOT NULL,
    merged_id uuid NOT NULL,
    merged_customer jsonb NOT NULL,
    kept_customer jsonb NOT NULL,
    sighting_ids uuid[] NOT NULL,
    visits jsonb NOT NULL,
    embedding_ids uuid[] NOT NULL,
    merged_by uuid,
    merged_at timestamptz NOT NULL DEFAULT now(),
    undone_at timestamptz,
    UNIQUE (tenant_id, id)
);
CREATE INDEX merges_kept ON merges (tenant_id, kept_id) WHERE undone_at IS NULL;

CREATE TABLE not_same_person (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    person_a uuid NOT NULL,
    person_b uuid NOT NULL,
    marked_by uuid,
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, person_a, person_b),
    CHECK (person_a < person_b)
);

ALTER TABLE audit_log
    ADD COLUMN seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash bytea;
CREATE UNIQUE INDEX audit_log_chain ON audit_log
    ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), seq);

CREATE FUNCTION audit_row_text(a audit_log) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT concat_ws('|', a.seq::text, coalesce(a.tenant_id::text, '-'), a.actor_kind,
                     coalesce(a.actor_id::text, '-'), a.action, a.target_type,
                     coalesce(a.target_id, '-'), a.details::text,
                     to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))
$$;

CREATE FUNCTION audit_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    chain uuid := coalesce(NEW.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid);
    last record;
BEGIN
    -- One writer per chain at a time: the link is to the row committed before this one.
    PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || chain::text, 0));
    SELECT seq, hash INTO last FROM audit_log
        WHERE coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) = chain
          AND seq IS NOT NULL
        ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce(last.seq, 0) + 1;
    NEW.prev_hash := coalesce(last.hash, '\x'::bytea);
    NEW.at := clock_timestamp();
    NEW.hash := sha256(NEW.prev_hash || convert_to(audit_row_text(NEW), 'UTF8'));
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_chain();

-- The live monitor: every new or extended visit is announced (ids only) to listening API instances.
CREATE FUNCTION visits_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('visitlens_visits', NEW.tenant_id::text || ',' || NEW.site_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER visits_notify AFTER INSERT OR UPDATE ON visits
    FOR EACH ROW EXECUTE FUNCTION visits_notify();
CREATE INDEX visits_updated ON visits (tenant_id, updated_at, id);
"""


def upgrade() -> None:
    app = op.get_context().config.attributes["app_role"]  # type: ignore[union-attr]
    op.execute(SCHEMA)
    for table in ("visit_stats_hourly", "merges", "not_same_person"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            "USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
        )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON visit_stats_hourly TO {app}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON merges TO {app}")  # DELETE: erasure
    op.execute(f"GRANT SELECT, INSERT, DELETE ON not_same_person TO {app}")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS visits_notify ON visits")
    op.execute("DROP FUNCTION IF EXISTS visits_notify()")
    op.execute("DROP INDEX IF EXISTS visits_updated")
    op.execute("DROP TRIGGER IF EXISTS audit_log_chain ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_chain(), audit_row_text(audit_log)")
    op.execute("DROP INDEX IF EXISTS audit_log_chain")
    op.execute("ALTER TABLE audit_log DROP COLUMN seq, DROP COLUMN prev_hash, DROP COLUMN hash")
    op.execute("DROP TABLE IF EXISTS not_same_person, merges, visit_stats_hourly")
    op.execute("DROP INDEX IF EXISTS visits_site_time_customer")

"""Edge staff galleries are versioned: every change to a tenant's staff views bumps one counter.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

The edge keeps a copy of its site's staff embeddings and asks "anything newer than version N?".
Triggers bump the version on any change that alters what a gallery contains (a staff view added or
removed, a staff member deactivated, moved to another site or deleted), so no code path can forget.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE staff_gallery_versions (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    version bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION bump_staff_gallery(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- During a tenant's cascading delete the tenant row is already gone: nothing to version.
    IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = p_tenant) THEN
        RETURN;
    END IF;
    INSERT INTO staff_gallery_versions AS v (tenant_id, version, changed_at)
    VALUES (p_tenant, 1, clock_timestamp())
    ON CONFLICT (tenant_id)
    DO UPDATE SET version = v.version + 1, changed_at = clock_timestamp();
END $$;

CREATE FUNCTION staff_views_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.person_kind = 'staff' THEN
        PERFORM bump_staff_gallery(NEW.tenant_id);
    ELSIF TG_OP = 'DELETE' AND OLD.person_kind = 'staff' THEN
        PERFORM bump_staff_gallery(OLD.tenant_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION staff_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM bump_staff_gallery(OLD.tenant_id);
    ELSIF NEW.active IS DISTINCT FROM OLD.active OR NEW.site_id IS DISTINCT FROM OLD.site_id THEN
        PERFORM bump_staff_gallery(NEW.tenant_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER person_embeddings_staff_version
    AFTER INSERT OR UPDATE OR DELETE ON person_embeddings
    FOR EACH ROW EXECUTE FUNCTION staff_views_changed();
CREATE TRIGGER staff_version
    AFTER UPDATE OR DELETE ON staff
    FOR EACH ROW EXECUTE FUNCTION staff_changed();
"""


def upgrade() -> None:
    app = op.get_context().config.attributes["app_role"]  # type: ignore[union-attr]
    op.execute(SCHEMA)
    op.execute("ALTER TABLE staff_gallery_versions ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE staff_gallery_versions FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON staff_gallery_versions "
        "USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON staff_gallery_versions TO {app}")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS staff_version ON staff")
    op.execute("DROP TRIGGER IF EXISTS person_embeddings_staff_version ON person_embeddings")
    op.execute("DROP FUNCTION IF EXISTS staff_changed(), staff_views_changed()")
    op.execute("DROP FUNCTION IF EXISTS bump_staff_gallery(uuid)")
    op.execute("DROP TABLE IF EXISTS staff_gallery_versions")

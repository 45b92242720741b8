"""Security hardening: live principal checks, event fingerprints, a per-tenant replay horizon.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

- ``auth_principal_active(kind, subject)``: whether a token's subject may still act (user not
  disabled, API key not revoked or expired, tenant active). Access tokens are checked against it
  on every request, so deactivating a tenant or disabling a user ends every token at once.
- ``sightings.ce_digest``: SHA-256 of the event's canonical data, so a replay with the same
  CloudEvent id but different data is a conflict (409), never a silent drop.
- ``tenants.replay_horizon_days``: how old an event may be and still be counted (edge replay
  after an outage); older events are refused with 422.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PRINCIPAL_ACTIVE = """
CREATE FUNCTION auth_principal_active(p_kind text, p_subject uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT CASE p_kind
        WHEN 'user' THEN EXISTS (
            SELECT 1 FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id
            WHERE u.id = p_subject AND NOT u.disabled AND coalesce(t.active, true))
        WHEN 'api_key' THEN EXISTS (
            SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
            WHERE k.id = p_subject AND k.revoked_at IS NULL
              AND (k.expires_at IS NULL OR k.expires_at > now()) AND t.active)
        ELSE false
    END
$$;
"""


def upgrade() -> None:
    attributes = op.get_context().config.attributes  # type: ignore[union-attr]
    app, auth = attributes["app_role"], attributes["auth_role"]
    op.execute(PRINCIPAL_ACTIVE)
    op.execute(f"GRANT CREATE ON SCHEMA public TO {auth}")
    op.execute(f"ALTER FUNCTION auth_principal_active(text, uuid) OWNER TO {auth}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {auth}")
    op.execute("REVOKE ALL ON FUNCTION auth_principal_active(text, uuid) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION auth_principal_active(text, uuid) TO {app}")

    op.execute("ALTER TABLE sightings ADD COLUMN ce_digest bytea")
    op.execute(
        "COMMENT ON COLUMN sightings.ce_digest IS "
        "'SHA-256 of the event data as sent: the same id with other data is a conflict'"
    )
    op.execute(
        "ALTER TABLE tenants ADD COLUMN replay_horizon_days integer NOT NULL DEFAULT 30 "
        "CHECK (replay_horizon_days BETWEEN 1 AND 3650)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE tenants DROP COLUMN IF EXISTS replay_horizon_days")
    op.execute("ALTER TABLE sightings DROP COLUMN IF EXISTS ce_digest")
    op.execute("DROP FUNCTION IF EXISTS auth_principal_active(text, uuid)")

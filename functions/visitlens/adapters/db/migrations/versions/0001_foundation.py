"""Foundation: tenants, sites, cameras, identities, people, visits, sightings, audit, with RLS.

Every tenant-scoped table has ENABLE + FORCE ROW LEVEL SECURITY with policies on the per-transaction
setting ``app.tenant_id``. Cross-tenant references are impossible by construction: child tables
reference their parent by ``(tenant_id, id)``.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Tables whose rows all belong to exactly one tenant.
TENANT_TABLES = (
    "sites",
    "cameras",
    "api_keys",
    "staff",
    "staff_face_images",
    "customers",
    "person_embeddings",
    "visits",
    "sightings",
)
# Tables that also hold platform-level rows (tenant_id NULL), visible only to system admins.
PLATFORM_TABLES = ("users", "refresh_tokens", "audit_log")


def _roles() -> tuple[str, str]:
    attributes = op.get_context().config.attributes  # type: ignore[union-attr]
    return attributes["app_role"], attributes["auth_role"]


SCHEMA = r"""
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;
COMMENT ON FUNCTION app_current_tenant() IS
    'Tenant of this transaction, set by the application from a verified token; NULL when unset.';

CREATE FUNCTION app_is_system_admin() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('app.system_admin', true), '') = 'on' $$;

CREATE TABLE tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    raw_retention_days integer NOT NULL DEFAULT 30 CHECK (raw_retention_days BETWEEN 1 AND 3650),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone text NOT NULL,
    address text,
    visit_window_s integer NOT NULL DEFAULT 1800 CHECK (visit_window_s BETWEEN 60 AND 86400),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE cameras (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    site_id uuid NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind text NOT NULL DEFAULT 'rtsp' CHECK (kind IN ('rtsp', 'usb', 'file', 'folder')),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (tenant_id, id),
    UNIQUE (site_id, name)
);

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    email text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
    display_name text NOT NULL DEFAULT '',
    role text NOT NULL CHECK (role IN ('system_admin', 'tenant_admin', 'site_manager', 'worker')),
    site_ids uuid[] NOT NULL DEFAULT '{}',
    password_hash text NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    CHECK ((role = 'system_admin') = (tenant_id IS NULL)),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix text NOT NULL UNIQUE,
    secret_hash bytea NOT NULL,
    role text NOT NULL CHECK (role IN ('tenant_admin', 'site_manager', 'worker')),
    site_ids uuid[] NOT NULL DEFAULT '{}',
    camera_ids uuid[] NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    last_used_at timestamptz,
    revoked_at timestamptz,
    UNIQUE (tenant_id, id)
);

CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id uuid NOT NULL,
    secret_hash bytea NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    replaced_by uuid
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE staff (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id uuid,
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    external_ref text,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE SET NULL (site_id),
    UNIQUE (tenant_id, id)
);

CREATE TABLE customers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    first_site_id uuid,
    visit_count integer NOT NULL DEFAULT 0 CHECK (visit_count >= 0),
    gender text CHECK (gender IN ('female', 'male', 'unknown')),
    age_band text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, first_site_id) REFERENCES sites (tenant_id, id)
        ON DELETE SET NULL (first_site_id),
    CHECK (last_seen_at >= first_seen_at),
    UNIQUE (tenant_id, id)
);

-- Metadata of every vector stored in Milvus; the vector itself lives there, keyed by id.
CREATE TABLE person_embeddings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    person_kind text NOT NULL CHECK (person_kind IN ('customer', 'staff')),
    customer_id uuid,
    staff_id uuid,
    model_id text NOT NULL,
    dim integer NOT NULL CHECK (dim > 0),
    quality real CHECK (quality BETWEEN 0 AND 1),
    source text NOT NULL CHECK (source IN ('track', 'enrollment', 'merge')),
    snapshot_key text,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, staff_id) REFERENCES staff (tenant_id, id) ON DELETE CASCADE,
    CHECK ((person_kind = 'customer' AND customer_id IS NOT NULL AND staff_id IS NULL)
        OR (person_kind = 'staff' AND staff_id IS NOT NULL AND customer_id IS NULL)),
    UNIQUE (tenant_id, id)
);
CREATE INDEX person_embeddings_customer ON person_embeddings (tenant_id, customer_id)
    WHERE customer_id IS NOT NULL;
CREATE INDEX person_embeddings_staff ON person_embeddings (tenant_id, staff_id)
    WHERE staff_id IS NOT NULL;

CREATE TABLE staff_face_images (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    object_key text NOT NULL,
    is_primary boolean NOT NULL DEFAULT false,
    quality real CHECK (quality BETWEEN 0 AND 1),
    landmarks jsonb,
    embedding_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, staff_id) REFERENCES staff (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, embedding_id) REFERENCES person_embeddings (tenant_id, id)
        ON DELETE SET NULL (embedding_id),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX staff_face_images_one_primary ON staff_face_images (tenant_id, staff_id)
    WHERE is_primary;

CREATE TABLE visits (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    site_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz NOT NULL,
    is_new boolean NOT NULL,
    sighting_count integer NOT NULL DEFAULT 1 CHECK (sighting_count >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    CHECK (ended_at >= started_at),
    UNIQUE (tenant_id, id)
);
-- Report series and visit lists by site and time; the open visit of a person at a site.
CREATE INDEX visits_site_time ON visits (tenant_id, site_id, started_at);
CREATE INDEX visits_time ON visits (tenant_id, started_at);
CREATE INDEX visits_customer ON visits (tenant_id, customer_id, ended_at DESC);

-- One row per received face event; (source, id) of the CloudEvent makes ingest idempotent.
CREATE TABLE sightings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    site_id uuid NOT NULL,
    camera_id uuid NOT NULL,
    ce_source text NOT NULL,
    ce_id text NOT NULL,
    ce_type text NOT NULL,
    captured_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    decision text NOT NULL CHECK (decision IN ('new_customer', 'returning_customer', 'staff',
                                               'rejected')),
    customer_id uuid,
    staff_id uuid,
    visit_id uuid,
    similarity real,
    quality real,
    snapshot_key text,
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, camera_id) REFERENCES cameras (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
        ON DELETE SET NULL (customer_id),
    FOREIGN KEY (tenant_id, staff_id) REFERENCES staff (tenant_id, id)
        ON DELETE SET NULL (staff_id),
    FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, id)
        ON DELETE SET NULL (visit_id),
    UNIQUE (tenant_id, ce_source, ce_id)
);
CREATE INDEX sightings_time ON sightings (tenant_id, site_id, captured_at);
CREATE INDEX sightings_visit ON sightings (tenant_id, visit_id) WHERE visit_id IS NOT NULL;

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid REFERENCES tenants (id) ON DELETE SET NULL,
    actor_kind text NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'system')),
    actor_id uuid,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text,
    details jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, at);
"""

AUTH_FUNCTIONS = r"""
-- Pre-authentication look-ups: the only reads that happen before the tenant is known.
-- They run as {auth} (NOLOGIN), which may only SELECT the credential tables, and return one row.
CREATE FUNCTION auth_find_user(p_email text)
RETURNS TABLE (id uuid, tenant_id uuid, role text, site_ids uuid[], password_hash text,
               disabled boolean, tenant_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT u.id, u.tenant_id, u.role, u.site_ids, u.password_hash, u.disabled,
           coalesce(t.active, true)
    FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id
    WHERE u.email = lower(p_email)
$$;

CREATE FUNCTION auth_find_api_key(p_prefix text)
RETURNS TABLE (id uuid, tenant_id uuid, role text, site_ids uuid[], camera_ids uuid[],
               secret_hash bytea, expires_at timestamptz, revoked_at timestamptz,
               tenant_active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT k.id, k.tenant_id, k.role, k.site_ids, k.camera_ids, k.secret_hash, k.expires_at,
           k.revoked_at, t.active
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
    WHERE k.prefix = p_prefix
$$;

CREATE FUNCTION auth_find_refresh_token(p_id uuid)
RETURNS TABLE (id uuid, tenant_id uuid, user_id uuid, family_id uuid, secret_hash bytea,
               expires_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT r.id, r.tenant_id, r.user_id, r.family_id, r.secret_hash, r.expires_at, r.revoked_at
    FROM refresh_tokens r WHERE r.id = p_id
$$;
"""


def upgrade() -> None:
    app, auth = _roles()
    op.execute(SCHEMA)

    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            "USING (tenant_id = app_current_tenant()) "
            "WITH CHECK (tenant_id = app_current_tenant())"
        )
    for table in PLATFORM_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        visible = (
            "tenant_id = app_current_tenant() OR (tenant_id IS NULL AND app_is_system_admin())"
        )
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({visible}) WITH CHECK ({visible})"
        )

    # tenants: a tenant sees itself; only system admins create, delete or see every tenant.
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenants FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_read ON tenants FOR SELECT "
        "USING (id = app_current_tenant() OR app_is_system_admin())"
    )
    op.execute(
        "CREATE POLICY tenant_update ON tenants FOR UPDATE "
        "USING (id = app_current_tenant() OR app_is_system_admin()) "
        "WITH CHECK (id = app_current_tenant() OR app_is_system_admin())"
    )
    op.execute(
        "CREATE POLICY tenant_create ON tenants FOR INSERT WITH CHECK (app_is_system_admin())"
    )
    op.execute("CREATE POLICY tenant_delete ON tenants FOR DELETE USING (app_is_system_admin())")

    # The pre-authentication role sees credential rows only through the functions it owns.
    for table in ("users", "api_keys", "refresh_tokens", "tenants"):
        op.execute(f"GRANT SELECT ON {table} TO {auth}")
        op.execute(f"CREATE POLICY auth_lookup ON {table} FOR SELECT TO {auth} USING (true)")
    op.execute(AUTH_FUNCTIONS.format(auth=auth))
    # A new owner needs CREATE on the schema; it holds it only for the hand-over.
    op.execute(f"GRANT CREATE ON SCHEMA public TO {auth}")
    for signature in (
        "auth_find_user(text)",
        "auth_find_api_key(text)",
        "auth_find_refresh_token(uuid)",
    ):
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {auth}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {app}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {auth}")

    # The functions' role: plain DML under RLS; the audit log is append-only for it.
    op.execute(f"GRANT USAGE ON SCHEMA public TO {app}")
    all_tables = ("tenants", *TENANT_TABLES, "users", "refresh_tokens")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(all_tables)} TO {app}")
    op.execute(f"GRANT SELECT, INSERT ON audit_log TO {app}")
    op.execute(f"GRANT EXECUTE ON FUNCTION app_current_tenant(), app_is_system_admin() TO {app}")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS auth_find_user(text), auth_find_api_key(text), "
        "auth_find_refresh_token(uuid)"
    )
    op.execute(
        "DROP TABLE IF EXISTS audit_log, sightings, visits, staff_face_images, person_embeddings, "
        "customers, staff, refresh_tokens, api_keys, users, cameras, sites, tenants CASCADE"
    )
    op.execute("DROP FUNCTION IF EXISTS app_current_tenant(), app_is_system_admin()")

"""Row-level security on the real PostgreSQL: for every tenant-scoped table, a session of tenant A
cannot read, insert, update or delete tenant B's rows, and a session without a tenant sees nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from visitlens.adapters.db.migrate import auth_role
from visitlens.adapters.endpoints import Endpoints
from visitlens.adapters.postgres import Connection, Database
from visitlens.config import Settings
from visitlens.errors import Forbidden
from visitlens.ports import DbScope

pytestmark = pytest.mark.integration

# table -> (columns, values as SQL expressions using {t}, {site}, {camera}, ... placeholders)
INSERTS: dict[str, str] = {
    "sites": "INSERT INTO sites (id, tenant_id, name, timezone) VALUES ({id}, {t}, 'S-' || {id}::text, 'UTC')",
    "cameras": "INSERT INTO cameras (id, tenant_id, site_id, name) VALUES ({id}, {t}, {site}, 'C-' || {id}::text)",
    "users": "INSERT INTO users (id, tenant_id, email, role, password_hash) VALUES ({id}, {t}, {id}::text || '@example.com', 'tenant_admin', 'x')",
    "api_keys": "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, role) VALUES ({id}, {t}, 'k', {id}::text, '\\x00', 'worker')",
    "refresh_tokens": "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, secret_hash, expires_at) VALUES ({id}, {t}, {user}, {id}, '\\x00', now() + interval '1 day')",
    "staff": "INSERT INTO staff (id, tenant_id, site_id, display_name) VALUES ({id}, {t}, {site}, 'Ann')",
    "customers": "INSERT INTO customers (id, tenant_id, first_seen_at, last_seen_at) VALUES ({id}, {t}, now(), now())",
    "person_embeddings": "INSERT INTO person_embeddings (id, tenant_id, person_kind, customer_id, model_id, dim, source) VALUES ({id}, {t}, 'customer', {customer}, 'sface-2021dec', 128, 'track')",
    "staff_face_images": "INSERT INTO staff_face_images (id, tenant_id, staff_id, object_key) VALUES ({id}, {t}, {staff}, 'staff-faces/x.jpg')",
    "visits": "INSERT INTO visits (id, tenant_id, site_id, customer_id, started_at, ended_at, is_new) VALUES ({id}, {t}, {site}, {customer}, now(), now(), true)",
    "sightings": "INSERT INTO sightings (id, tenant_id, site_id, camera_id, ce_source, ce_id, ce_type, captured_at, last_seen_at, track_id, decision) VALUES ({id}, {t}, {site}, {camera}, 'src', {id}::text, 'com.visitlens.face.detected.v2', now(), now(), 'trk', 'new_customer')",
    "audit_log": "INSERT INTO audit_log (tenant_id, actor_kind, action, target_type) VALUES ({t}, 'system', 'test', 'x')",
}
# Inserted in this order so parents exist; the key names the placeholder children refer to.
PARENT_KEYS = {"sites": "site", "cameras": "camera", "users": "user", "staff": "staff",
               "customers": "customer"}  # fmt: skip
TENANT_TABLES = list(INSERTS)
# The app role may not UPDATE or DELETE the audit log at all: test_audit_log_is_append_only_for_the_app.
MUTABLE_TABLES = [t for t in TENANT_TABLES if t != "audit_log"]


def _render(sql: str, ids: dict[str, str]) -> str:
    return sql.format(**{k: f"'{v}'::uuid" for k, v in ids.items()})


async def _build_graph(conn: Connection, tenant_id: uuid.UUID) -> dict[str, str]:
    """One row in every tenant-scoped table; returns each table's row id (audit: its bigint)."""
    ids: dict[str, str] = {"t": str(tenant_id)}
    rows: dict[str, str] = {}
    for table, sql in INSERTS.items():
        row_id = str(uuid.uuid4())
        ids["id"] = row_id
        if table == "audit_log":
            value = await conn.fetchval(_render(sql, ids) + " RETURNING id")
            rows[table] = str(value)
            continue
        await conn.execute(_render(sql, ids))
        rows[table] = row_id
        if table in PARENT_KEYS:
            ids[PARENT_KEYS[table]] = row_id
    rows.update({f"_{k}": v for k, v in ids.items() if k not in ("id",)})
    return rows


@pytest.fixture(scope="module")
async def two_tenants(db: Database) -> dict[str, Any]:
    async with db.transaction(DbScope(None, system_admin=True)) as conn:
        a = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ($1, 'A') RETURNING id",
            f"a-{uuid.uuid4().hex[:8]}",
        )
        b = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ($1, 'B') RETURNING id",
            f"b-{uuid.uuid4().hex[:8]}",
        )
    async with db.transaction(DbScope(a)) as conn:
        rows_a = await _build_graph(conn, a)
    async with db.transaction(DbScope(b)) as conn:
        rows_b = await _build_graph(conn, b)
    return {"a": a, "b": b, "rows_a": rows_a, "rows_b": rows_b}


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_tenant_a_cannot_read_tenant_b(
    db: Database, two_tenants: dict[str, Any], table: str
) -> None:
    row_b = two_tenants["rows_b"][table]
    async with db.transaction(DbScope(two_tenants["a"])) as conn:
        visible = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id::text = $1", row_b)
        foreign = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id IS DISTINCT FROM $1", two_tenants["a"]
        )
        own = await conn.fetchval(f"SELECT count(*) FROM {table}")
    assert visible == 0
    assert foreign == 0
    assert own >= 1, "tenant A must still see its own rows (the test would be vacuous otherwise)"


@pytest.mark.parametrize("table", MUTABLE_TABLES)
async def test_tenant_a_cannot_update_or_delete_tenant_b(
    db: Database, two_tenants: dict[str, Any], table: str
) -> None:
    row_b = two_tenants["rows_b"][table]
    async with db.transaction(DbScope(two_tenants["a"])) as conn:
        updated = await conn.execute(
            f"UPDATE {table} SET tenant_id = tenant_id WHERE id::text = $1", row_b
        )
        deleted = await conn.execute(f"DELETE FROM {table} WHERE id::text = $1", row_b)
    assert updated == "UPDATE 0"
    assert deleted == "DELETE 0"
    async with db.transaction(DbScope(two_tenants["b"])) as conn:
        still = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id::text = $1", row_b)
    assert still == 1


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_tenant_a_cannot_insert_into_tenant_b(
    db: Database, two_tenants: dict[str, Any], table: str
) -> None:
    rows_b = two_tenants["rows_b"]
    ids = {k[1:]: v for k, v in rows_b.items() if k.startswith("_")}
    ids["id"] = str(uuid.uuid4())
    with pytest.raises(Forbidden):
        async with db.transaction(DbScope(two_tenants["a"])) as conn:
            await conn.execute(_render(INSERTS[table], ids))


@pytest.mark.parametrize("table", MUTABLE_TABLES)
async def test_tenant_a_cannot_move_own_rows_into_tenant_b(
    db: Database, two_tenants: dict[str, Any], table: str
) -> None:
    row_a = two_tenants["rows_a"][table]
    with pytest.raises((Forbidden, asyncpg.PostgresError)):
        async with db.transaction(DbScope(two_tenants["a"])) as conn:
            await conn.execute(
                f"UPDATE {table} SET tenant_id = $2 WHERE id::text = $1", row_a, two_tenants["b"]
            )


@pytest.mark.parametrize("table", [*TENANT_TABLES, "tenants"])
async def test_no_tenant_sees_nothing(
    db: Database, two_tenants: dict[str, Any], table: str
) -> None:
    async with db.transaction(DbScope.none()) as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        if table != "tenants":
            inserted = uuid.uuid4()
            ids = {k[1:]: v for k, v in two_tenants["rows_a"].items() if k.startswith("_")}
            ids["id"] = str(inserted)
    with pytest.raises(Forbidden):
        async with db.transaction(DbScope.none()) as conn:
            if table == "tenants":
                await conn.execute("INSERT INTO tenants (slug, name) VALUES ('zz-none', 'x')")
            else:
                await conn.execute(_render(INSERTS[table], ids))


async def test_nothing_of_a_tenants_transaction_reaches_the_next_use_of_its_connection(
    stack_settings: Settings, endpoints: Endpoints, two_tenants: dict[str, Any]
) -> None:
    """The pool skips asyncpg's session reset (adapters.postgres): one connection, reused after
    a committed, a failed and an aborted tenant transaction, starts each next use clean."""
    one = stack_settings.database.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})
    database = Database(endpoints.app_dsn, one)
    probe = (
        "SELECT pg_backend_pid() AS pid, current_setting('app.tenant_id', true) AS tenant, "
        "current_setting('app.system_admin', true) AS admin, "
        "(SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
        "AND locktype = 'advisory') AS locks, "
        "(SELECT count(*) FROM sites) AS sites"
    )

    async def clean(pid: int | None) -> int:
        async with database.transaction(DbScope.none()) as conn:
            row = await conn.fetchrow(probe)
            assert row is not None
            assert (row["tenant"], row["admin"], row["locks"], row["sites"]) == ("", "off", 0, 0)
            assert pid is None or row["pid"] == pid  # the same connection, reused
            return int(row["pid"])

    async def busy(conn: Connection) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock(42)")
        assert await conn.fetchval("SELECT count(*) FROM sites") > 0

    try:
        pid = await clean(None)
        async with database.transaction(DbScope(two_tenants["a"])) as conn:
            await busy(conn)
        await clean(pid)
        with pytest.raises(RuntimeError):
            async with database.transaction(DbScope(two_tenants["a"])) as conn:
                await busy(conn)
                raise RuntimeError("the caller fails mid-way")
        await clean(pid)
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with database.transaction(DbScope(two_tenants["a"])) as conn:
                await busy(conn)
                await conn.execute("SELECT 1 / 0")  # the transaction is aborted
        await clean(pid)
        assert await database.fetchval_unscoped(
            "SELECT current_setting('app.tenant_id', true)"
        ) in (
            "",
            None,
        )
    finally:
        await database.close()


async def test_tenants_see_only_themselves(db: Database, two_tenants: dict[str, Any]) -> None:
    async with db.transaction(DbScope(two_tenants["a"])) as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM tenants")]
        assert ids == [two_tenants["a"]]
        assert (
            await conn.execute("DELETE FROM tenants WHERE id = $1", two_tenants["b"]) == "DELETE 0"
        )
        assert (
            await conn.execute("DELETE FROM tenants WHERE id = $1", two_tenants["a"]) == "DELETE 0"
        )


async def test_every_tenant_table_forces_rls(db: Database, endpoints: Endpoints) -> None:
    """Catalogue check: a future table with a tenant_id column cannot ship without RLS."""
    conn = await asyncpg.connect(endpoints.owner_dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
              AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                           AND a.attname = 'tenant_id' AND NOT a.attisdropped)
                   OR c.relname = 'tenants')
            """
        )
    finally:
        await conn.close()
    tables = {r["relname"] for r in rows}
    assert set(TENANT_TABLES) | {"tenants"} <= tables
    for r in rows:
        assert r["relrowsecurity"] and r["relforcerowsecurity"], r["relname"]
        assert r["policies"] >= 1, r["relname"]


async def test_app_role_is_not_privileged(stack_settings: Settings, endpoints: Endpoints) -> None:
    conn = await asyncpg.connect(endpoints.app_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = current_user"
        )
        assert row is not None and not any(row.values())
        owned = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        )
        assert owned == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"SET ROLE {auth_role(stack_settings)}")
    finally:
        await conn.close()


async def test_audit_log_is_append_only_for_the_app(
    db: Database, two_tenants: dict[str, Any]
) -> None:
    async with db.transaction(DbScope(two_tenants["a"])) as conn:
        await conn.execute(
            "INSERT INTO audit_log (tenant_id, actor_kind, action, target_type) "
            "VALUES ($1, 'system', 'probe', 'x')",
            two_tenants["a"],
        )
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(Forbidden):
            async with db.transaction(DbScope(two_tenants["a"])) as conn:
                await conn.execute(statement)


async def test_credential_lookup_functions_return_only_the_asked_row(
    db: Database, two_tenants: dict[str, Any]
) -> None:
    """The pre-auth functions bypass tenant scope by design; they must not enumerate."""
    async with db.transaction(DbScope.none()) as conn:
        assert await conn.fetch("SELECT * FROM auth_find_user('nobody@example.com')") == []
        assert await conn.fetch("SELECT * FROM auth_find_api_key('')") == []
        assert await conn.fetchval("SELECT count(*) FROM users") == 0

"""How far back "returning" reaches: a tenant's gallery scope.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Ingest links a pass only to a customer seen within the tenant's ``returning_within_days`` (default
180), and the open-set threshold follows the views of those customers, not of everyone the tenant
ever kept: a chain's lifetime gallery raises the threshold past real genuine scores (make bench,
``results.scale``). Customers outside the scope are kept (retention decides deletion); a pass of
theirs starts a new customer, and an explicit search (match) still finds them.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE tenants ADD COLUMN returning_within_days integer NOT NULL DEFAULT 180 "
        "CHECK (returning_within_days BETWEEN 1 AND 3650)"
    )
    # the scope's customers, counted and filtered by their last sighting
    op.execute("CREATE INDEX customers_scope ON customers (tenant_id, last_seen_at)")
    op.execute(
        """
        CREATE FUNCTION app_gallery_scope_start() RETURNS timestamptz
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT now() - make_interval(days => returning_within_days) FROM tenants
                  WHERE id = app_current_tenant() $$;
        COMMENT ON FUNCTION app_gallery_scope_start() IS
            'Start of this tenant''s gallery scope: customers last seen before it are not linked to.';
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION app_gallery_scope_start()")
    op.execute("DROP INDEX customers_scope")
    op.execute("ALTER TABLE tenants DROP COLUMN returning_within_days")

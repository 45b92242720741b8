"""Duplicates suggestions: a pass too weak to link, too strong to forget.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

When a pass starts a new customer although its closest customer scored in the review band (at or
above the base link threshold, below the gallery's open-set threshold), ingest keeps the pair
here. The console lists the open pairs for a person to merge or mark "not the same person"
(``not_same_person`` hides a pair); a merge or an erasure removes the rows with the customer.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE duplicate_suggestions (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    candidate_id uuid NOT NULL,
    similarity real NOT NULL CHECK (similarity BETWEEN -1 AND 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id, candidate_id),
    CHECK (customer_id <> candidate_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, candidate_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE duplicate_suggestions IS
    'customer_id was created by a pass whose closest customer, candidate_id, scored in the review band';
CREATE INDEX duplicate_suggestions_list ON duplicate_suggestions
    (tenant_id, created_at DESC, customer_id, candidate_id);
CREATE INDEX duplicate_suggestions_candidate ON duplicate_suggestions (tenant_id, candidate_id);
"""


def upgrade() -> None:
    app = op.get_context().config.attributes["app_role"]  # type: ignore[union-attr]
    op.execute(SCHEMA)
    op.execute("ALTER TABLE duplicate_suggestions ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE duplicate_suggestions FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON duplicate_suggestions "
        "USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, DELETE ON duplicate_suggestions TO {app}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS duplicate_suggestions")

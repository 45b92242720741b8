"""Demographics: the edge's estimate per sighting, a person's accumulated evidence, a tenant switch.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Only labels and bands are stored (never probabilities per face): ``sightings.gender`` and
``sightings.age_band`` as the edge voted them; ``customers.gender_score`` (the sum of signed
confidences, female positive) and ``customers.age_band_votes`` (sightings per band) from which the
person's ``gender`` and ``age_band`` are re-derived at every sighting, so the estimate improves
with evidence. ``tenants.demographics_enabled`` off: nothing is stored.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE sightings ADD COLUMN gender text "
        "CHECK (gender IN ('female', 'male', 'unknown')), ADD COLUMN age_band text"
    )
    op.execute(
        "ALTER TABLE customers ADD COLUMN gender_score double precision NOT NULL DEFAULT 0, "
        "ADD COLUMN age_band_votes jsonb NOT NULL DEFAULT '{}'"
    )
    op.execute("ALTER TABLE tenants ADD COLUMN demographics_enabled boolean NOT NULL DEFAULT true")


def downgrade() -> None:
    op.execute("ALTER TABLE tenants DROP COLUMN IF EXISTS demographics_enabled")
    op.execute(
        "ALTER TABLE customers DROP COLUMN IF EXISTS gender_score, "
        "DROP COLUMN IF EXISTS age_band_votes"
    )
    op.execute("ALTER TABLE sightings DROP COLUMN IF EXISTS gender, DROP COLUMN IF EXISTS age_band")

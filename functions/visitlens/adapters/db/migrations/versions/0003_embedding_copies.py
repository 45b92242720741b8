"""PostgreSQL keeps a copy of every stored view's embedding: the system of record for the gallery.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Milvus is the index; PostgreSQL holds the truth. With the vector here, choosing which views to keep
needs no read from Milvus, and a collection can be rebuilt (new index type, lost volume) from
PostgreSQL alone. Stored as little-endian float32 bytes (512 B for 128-D), so any PostgreSQL works,
with or without pgvector.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE person_embeddings ADD COLUMN embedding bytea")
    op.execute(
        "ALTER TABLE person_embeddings ADD CONSTRAINT person_embeddings_embedding_size "
        "CHECK (embedding IS NULL OR octet_length(embedding) = dim * 4)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE person_embeddings DROP COLUMN IF EXISTS embedding")

"""Knowledge: knowledge bases, documents, chunks (with embeddings), ingestion jobs;
turns record the knowledge they used and whether the grounding check flagged them.

Full-text search is dialect-specific and lives outside the models: an FTS5 table on
SQLite (rowid = chunk id, Porter stemming), a generated `tsvector` column with a GIN
index on PostgreSQL. pgvector is not required here: embeddings are `real[]`, and the
PostgreSQL knowledge store adds the extension and its HNSW indexes when it starts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("knowledge", _json(), nullable=True))
        batch.add_column(
            sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("turns") as batch:
        batch.alter_column("flagged", server_default=None)

    op.create_table(
        "knowledge_bases",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("embedder", sa.String(200), nullable=False),
        sa.Column("dims", sa.Integer(), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_bases"),
        _tenant_fk("knowledge_bases"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_knowledge_bases_tenant_id_name"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_knowledge_bases_tenant_id_id"),
    )
    op.create_table(
        "kb_documents",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kb_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(2048), nullable=False),
        sa.Column("title", sa.String(500), nullable=True),
        sa.Column("mime_type", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("access_tags", _json(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_documents"),
        _tenant_fk("kb_documents"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "kb_id"],
            ["knowledge_bases.tenant_id", "knowledge_bases.id"],
            name="fk_kb_documents_tenant_id_kb_id_knowledge_bases",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("kb_id", "source", name="uq_kb_documents_kb_id_source"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_kb_documents_tenant_id_id"),
    )
    op.create_index("ix_kb_documents_kb_id_content_hash", "kb_documents", ["kb_id", "content_hash"])
    embedding: sa.types.TypeEngine[Any] = (
        postgresql.ARRAY(postgresql.REAL()) if dialect == "postgresql" else sa.LargeBinary()
    )
    op.create_table(
        "kb_chunks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kb_id", sa.BigInteger(), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("headings", _json(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("access_tags", _json(), nullable=False),
        sa.Column("embedding", embedding, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_chunks"),
        _tenant_fk("kb_chunks"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "kb_id"],
            ["knowledge_bases.tenant_id", "knowledge_bases.id"],
            name="fk_kb_chunks_tenant_id_kb_id_knowledge_bases",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "document_id"],
            ["kb_documents.tenant_id", "kb_documents.id"],
            name="fk_kb_chunks_tenant_id_document_id_kb_documents",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_kb_chunks_tenant_id_kb_id", "kb_chunks", ["tenant_id", "kb_id"])
    op.create_index("ix_kb_chunks_document_id_ordinal", "kb_chunks", ["document_id", "ordinal"])
    op.create_index("ix_kb_chunks_kb_id_content_hash", "kb_chunks", ["kb_id", "content_hash"])
    op.create_table(
        "kb_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kb_name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(2048), nullable=False),
        sa.Column("progress", _json(), nullable=False),
        sa.Column("result", _json(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_jobs"),
        _tenant_fk("kb_jobs"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_kb_jobs_status"
        ),
    )
    op.create_index("ix_kb_jobs_tenant_id_created_at", "kb_jobs", ["tenant_id", "created_at"])

    if dialect == "sqlite":
        # A plain FTS5 table holding its own copy of the text, kept in step by the
        # store inside the same transaction as kb_chunks (no triggers to forget).
        op.execute(
            "CREATE VIRTUAL TABLE kb_chunks_fts USING fts5(text, tokenize='porter unicode61')"
        )
        # term -> number of chunks: lets searches skip terms that are in most chunks
        op.execute("CREATE VIRTUAL TABLE kb_chunks_fts_vocab USING fts5vocab(kb_chunks_fts, 'row')")
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE kb_chunks ADD COLUMN tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_kb_chunks_tsv ON kb_chunks USING gin (tsv)")
        op.execute("CREATE INDEX ix_kb_chunks_access_tags ON kb_chunks USING gin (access_tags)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS kb_chunks_fts_vocab")
        op.execute("DROP TABLE IF EXISTS kb_chunks_fts")
    op.drop_index("ix_kb_jobs_tenant_id_created_at", table_name="kb_jobs")
    op.drop_table("kb_jobs")
    op.drop_table("kb_chunks")
    op.drop_index("ix_kb_documents_kb_id_content_hash", table_name="kb_documents")
    op.drop_table("kb_documents")
    op.drop_table("knowledge_bases")
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("flagged")
        batch.drop_column("knowledge")

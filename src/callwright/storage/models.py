"""The relational schema: tenants, agent config versions, calls, turns, events, knowledge.

Every row carries `tenant_id` from the first migration on, so hosted multi-tenancy never
needs a data migration. Turns and events reference their call through the composite key
(tenant_id, call_id), so the database itself refuses a row whose tenant differs from its
call's. The hand-written migration 0001 must match these models exactly; a test compares
them with Alembic's autogenerate on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CALL_STATUSES = ("active", "ended", "failed")
TURN_ROLES = ("user", "assistant")
DEFAULT_TENANT_ID = "default"
DEFAULT_TENANT_NAME = "Default tenant"

# Deterministic constraint names: the migration spells them out, and renaming or dropping
# a constraint later needs its name on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are stored as UTC
    and tagged UTC again when read. Naive datetimes are refused: guessing their zone is
    how timestamps silently shift by hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (compact, indexable); JSON text elsewhere. SQL NULL (not JSON
# `null`) for missing values so `IS NULL` works.
JSONDoc = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class EmbeddingVector(TypeDecorator[np.ndarray]):
    """A float32 vector: raw little-endian bytes on SQLite, `real[]` on PostgreSQL.

    `real[]` needs no extension, so the schema migrates on any PostgreSQL; pgvector
    casts it (`embedding::vector(384)`) in the expression HNSW index the PostgreSQL
    knowledge store creates per dimension.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(REAL()))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: np.ndarray | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        vec = np.asarray(value, dtype="<f4").reshape(-1)
        return vec.tolist() if dialect.name == "postgresql" else vec.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview):
            return np.frombuffer(bytes(value), dtype="<f4").astype(np.float32)
        return np.asarray(value, dtype=np.float32)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AgentConfig(Base):
    """One immutable version of an agent's config; a call records which version it ran."""

    __tablename__ = "agent_configs"
    __table_args__ = (UniqueConstraint("tenant_id", "agent_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    agent_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    config_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        # Target of the turns/events composite foreign keys.
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint("status IN ('active', 'ended', 'failed')", name="status"),
        # Call history: newest first per tenant, optionally per agent.
        Index(None, "tenant_id", "started_at"),
        Index(None, "tenant_id", "agent_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    agent_id: Mapped[str] = mapped_column(String(128))
    agent_version: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(128))
    consent: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(64))
    recording_uri: Mapped[str | None] = mapped_column(String(1024))
    # `metadata` is reserved on declarative classes; the column keeps the plain name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDoc)


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("call_id", "index", "role"),
        ForeignKeyConstraint(
            ["tenant_id", "call_id"], ["calls.tenant_id", "calls.id"], ondelete="CASCADE"
        ),
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    call_id: Mapped[str] = mapped_column(String(36))
    index: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    # knowledge used by an assistant turn: chunks given to the LLM, cited, grounding check
    knowledge: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    # the grounding check found facts in the answer that no passage supports
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "call_id"], ["calls.tenant_id", "calls.id"], ondelete="CASCADE"
        ),
        Index(None, "call_id", "at"),
        Index(None, "tenant_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    call_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# ------------------------------------------------------------------ knowledge
JOB_STATUSES = ("queued", "running", "succeeded", "failed")


class KnowledgeBase(Base):
    """A tenant's named collection of documents, embedded in one vector space."""

    __tablename__ = "knowledge_bases"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        # target of the documents/chunks composite foreign keys
        UniqueConstraint("tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    embedder: Mapped[str] = mapped_column(String(200))  # the vector space (model id)
    dims: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    # bumped by every change, so other processes know their in-memory index is stale
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KnowledgeDocument(Base):
    __tablename__ = "kb_documents"
    __table_args__ = (
        UniqueConstraint("kb_id", "source"),
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "kb_id"],
            ["knowledge_bases.tenant_id", "knowledge_bases.id"],
            ondelete="CASCADE",
        ),
        Index(None, "kb_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    kb_id: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(2048))  # path, URL or upload name
    title: Mapped[str | None] = mapped_column(String(500))
    mime_type: Mapped[str] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the raw bytes
    access_tags: Mapped[list[str]] = mapped_column(JSONDoc)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDoc)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KnowledgeChunk(Base):
    """A retrievable passage. Tenant, knowledge base and access tags are copied onto
    the row so a search filters on them inside its one query."""

    __tablename__ = "kb_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "kb_id"],
            ["knowledge_bases.tenant_id", "knowledge_bases.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "document_id"],
            ["kb_documents.tenant_id", "kb_documents.id"],
            ondelete="CASCADE",
        ),
        Index(None, "tenant_id", "kb_id"),
        Index(None, "document_id", "ordinal"),
        Index(None, "kb_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    kb_id: Mapped[int] = mapped_column(BigInteger)
    document_id: Mapped[int] = mapped_column(BigInteger)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)  # what is indexed and shown: headings + body
    headings: Mapped[list[str]] = mapped_column(JSONDoc)
    content_hash: Mapped[str] = mapped_column(String(64))
    access_tags: Mapped[list[str]] = mapped_column(JSONDoc)
    embedding: Mapped[np.ndarray] = mapped_column(EmbeddingVector())


class KnowledgeJob(Base):
    """An ingestion job: what the API returns at once and the client polls."""

    __tablename__ = "kb_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        Index(None, "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    kb_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(2048))
    progress: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# ------------------------------------------------------------------ calendar
BOOKING_STATUSES = ("booked", "cancelled")


class CalendarResource(Base):
    """A bookable calendar of a tenant (a doctor, a room): its slots come from weekly
    opening hours in its own time zone, each taking up to `capacity` bookings."""

    __tablename__ = "calendar_resources"
    __table_args__ = (
        # target of the bookings' composite foreign key
        UniqueConstraint("tenant_id", "resource_id"),
        CheckConstraint("capacity >= 1", name="capacity"),
        CheckConstraint("slot_minutes >= 1", name="slot_minutes"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    resource_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))  # IANA, e.g. America/New_York
    slot_minutes: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    # {"mon": [["09:00", "17:00"]], ...}: local wall-clock intervals per weekday
    hours: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CalendarBooking(Base):
    """One booking of one slot. Cancelled bookings stay (history, idempotent replays)."""

    __tablename__ = "calendar_bookings"
    __table_args__ = (
        # a retried request (same key) must find its booking, never make a second one
        UniqueConstraint("tenant_id", "idempotency_key"),
        ForeignKeyConstraint(
            ["tenant_id", "resource_id"],
            ["calendar_resources.tenant_id", "calendar_resources.resource_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("status IN ('booked', 'cancelled')", name="status"),
        CheckConstraint("end_at > start_at", name="span"),
        Index(None, "tenant_id", "resource_id", "start_at"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # a speakable reference
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    resource_id: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    call_id: Mapped[str | None] = mapped_column(String(36))  # the call that booked it
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Created by migrations for one dialect only (full-text indexes), so not in the models:
# autogenerate comparisons must skip them.
DIALECT_ONLY_TABLES = frozenset(
    {
        "kb_chunks_fts",
        "kb_chunks_fts_vocab",
        "kb_chunks_fts_data",
        "kb_chunks_fts_idx",
        "kb_chunks_fts_content",
        "kb_chunks_fts_docsize",
        "kb_chunks_fts_config",
    }
)
DIALECT_ONLY_COLUMNS = frozenset({("kb_chunks", "tsv")})
DIALECT_ONLY_INDEXES = frozenset({"ix_kb_chunks_tsv", "ix_kb_chunks_access_tags"})


def include_in_comparison(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic `include_object` hook: ignore the dialect-only full-text objects and the
    per-dimension vector indexes the PostgreSQL knowledge store creates at run time."""
    if type_ == "table" and name in DIALECT_ONLY_TABLES:
        return False
    if type_ == "column" and (getattr(obj.table, "name", None), name) in DIALECT_ONLY_COLUMNS:
        return False
    return not (
        type_ == "index"
        and name is not None
        and (name in DIALECT_ONLY_INDEXES or name.startswith("ix_kb_chunks_hnsw_"))
    )

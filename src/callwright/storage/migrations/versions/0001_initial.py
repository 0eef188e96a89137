"""Initial schema: tenants, agent_configs, calls, turns, events; the default tenant.

Written by hand to match callwright.storage.models exactly (a test compares them on
SQLite and PostgreSQL). Types are spelled out here rather than imported from the models,
so that later model changes cannot rewrite history.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    tenants = op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
    )
    op.create_table(
        "agent_configs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_configs"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_agent_configs_tenant_id_tenants"
        ),
        sa.UniqueConstraint(
            "tenant_id", "agent_id", "version", name="uq_agent_configs_tenant_id_agent_id_version"
        ),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("agent_version", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("consent", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("ended_at", _ts(), nullable=True),
        sa.Column("end_reason", sa.String(64), nullable=True),
        sa.Column("recording_uri", sa.String(1024), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_calls_tenant_id_tenants"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_calls_tenant_id_id"),
        sa.CheckConstraint("status IN ('active', 'ended', 'failed')", name="ck_calls_status"),
    )
    op.create_index("ix_calls_tenant_id_started_at", "calls", ["tenant_id", "started_at"])
    op.create_index(
        "ix_calls_tenant_id_agent_id_started_at", "calls", ["tenant_id", "agent_id", "started_at"]
    )
    op.create_table(
        "turns",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("metrics", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_turns_tenant_id_tenants"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "call_id"],
            ["calls.tenant_id", "calls.id"],
            name="fk_turns_tenant_id_call_id_calls",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("call_id", "index", "role", name="uq_turns_call_id_index_role"),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_turns_role"),
    )
    op.create_table(
        "events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_events_tenant_id_tenants"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "call_id"],
            ["calls.tenant_id", "calls.id"],
            name="fk_events_tenant_id_call_id_calls",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_events_call_id_at", "events", ["call_id", "at"])
    op.create_index("ix_events_tenant_id_at", "events", ["tenant_id", "at"])

    # Embedded mode is single-tenant: everything belongs to this row.
    op.bulk_insert(
        tenants,
        [{"id": "default", "name": "Default tenant", "created_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.drop_index("ix_events_tenant_id_at", table_name="events")
    op.drop_index("ix_events_call_id_at", table_name="events")
    op.drop_table("events")
    op.drop_table("turns")
    op.drop_index("ix_calls_tenant_id_agent_id_started_at", table_name="calls")
    op.drop_index("ix_calls_tenant_id_started_at", table_name="calls")
    op.drop_table("calls")
    op.drop_table("agent_configs")
    op.drop_table("tenants")

"""Calendar: bookable resources per tenant (weekly opening hours, slot length,
capacity) and their bookings, with an idempotency key unique per tenant.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
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
    op.create_table(
        "calendar_resources",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("hours", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calendar_resources"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_calendar_resources_tenant_id_tenants"
        ),
        sa.UniqueConstraint(
            "tenant_id", "resource_id", name="uq_calendar_resources_tenant_id_resource_id"
        ),
        sa.CheckConstraint("capacity >= 1", name="ck_calendar_resources_capacity"),
        sa.CheckConstraint("slot_minutes >= 1", name="ck_calendar_resources_slot_minutes"),
    )
    op.create_table(
        "calendar_bookings",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("start_at", _ts(), nullable=False),
        sa.Column("end_at", _ts(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("call_id", sa.String(36), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calendar_bookings"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_calendar_bookings_tenant_id_tenants"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "resource_id"],
            ["calendar_resources.tenant_id", "calendar_resources.resource_id"],
            name="fk_calendar_bookings_tenant_id_resource_id_calendar_resources",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_calendar_bookings_tenant_id_idempotency_key"
        ),
        sa.CheckConstraint("status IN ('booked', 'cancelled')", name="ck_calendar_bookings_status"),
        sa.CheckConstraint("end_at > start_at", name="ck_calendar_bookings_span"),
    )
    op.create_index(
        "ix_calendar_bookings_tenant_id_resource_id_start_at",
        "calendar_bookings",
        ["tenant_id", "resource_id", "start_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_calendar_bookings_tenant_id_resource_id_start_at", table_name="calendar_bookings"
    )
    op.drop_table("calendar_bookings")
    op.drop_table("calendar_resources")

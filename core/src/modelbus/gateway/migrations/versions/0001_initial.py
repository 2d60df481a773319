"""Initial gateway schema: teams, keys, wallets, wallet entries, ledger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

MONEY = sa.Numeric(20, 10, asdecimal=True)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("budget_usd", MONEY, nullable=True),
        sa.Column("budget_period", sa.String(16), nullable=False, server_default="monthly"),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("models", sa.JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("team", sa.String(64), sa.ForeignKey("teams.name"), nullable=True, index=True),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("models", sa.JSON, nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("budget_usd", MONEY, nullable=True),
        sa.Column("budget_period", sa.String(16), nullable=False, server_default="monthly"),
        sa.Column("log_content", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "wallets",
        sa.Column("team", sa.String(64), sa.ForeignKey("teams.name"), primary_key=True),
        sa.Column("balance_usd", MONEY, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "wallet_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("team", sa.String(64), nullable=False, index=True),
        sa.Column("amount_usd", MONEY, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("note", sa.String(256), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True, index=True),
        sa.Column("team", sa.String(64), nullable=True, index=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("requested_model", sa.String(256), nullable=False),
        sa.Column("resolved_model", sa.String(256), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_creation_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_usd", MONEY, nullable=False, server_default="0"),
        sa.Column("reserved_usd", MONEY, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("route", sa.JSON, nullable=True),
    )
    op.create_index("ix_ledger_team_created", "ledger", ["team", "created_at"])
    op.create_index("ix_ledger_status", "ledger", ["status"])


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_table("wallet_entries")
    op.drop_table("wallets")
    op.drop_table("keys")
    op.drop_table("teams")

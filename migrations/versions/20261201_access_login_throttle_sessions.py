"""login delays per account and address, session generations, rotating keys of the rate counters

Revision ID: access
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "access"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.BigInteger(), nullable=False),
        sa.Column("last_failure", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index(op.f("ix_login_throttle_account"), "login_throttle", ["account"])
    op.create_table(
        "rate_window_key",
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("scope", "window_start", name=op.f("pk_rate_window_key")),
    )
    # Counters keyed with SECRET_KEY cannot be read under the new per-window keys: drop them.
    op.execute("DELETE FROM rate_counter")
    op.add_column("staff_user",
                  sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))
    # The per-account lockout gives way to the per-(account, address) delays above.
    _drop_column("staff_user", "failed_logins")
    _drop_column("staff_user", "locked_until")


def downgrade() -> None:
    op.add_column("staff_user", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("staff_user", sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
    _drop_column("staff_user", "session_generation")
    op.drop_table("rate_window_key")
    op.drop_index(op.f("ix_login_throttle_account"), table_name="login_throttle")
    op.drop_table("login_throttle")


def _drop_column(table: str, column: str) -> None:
    # SQLite (3.35+) drops a plain column in place; a batch rebuild would cascade through referring rows.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)

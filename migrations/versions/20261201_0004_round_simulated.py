"""a round can be a demonstration round of simulated responses

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:50:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN; every existing round holds real data.
    op.add_column("round", sa.Column("simulated", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE round DROP COLUMN simulated")
    else:
        op.drop_column("round", "simulated")

"""quota cells keep the staff count their target was sized from

Revision ID: quotas
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "quotas"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy: SQLite would lose the expression index uq_quota_cell).
    op.add_column("quota_cell", sa.Column(
        "staff_count", sa.Integer(),
        sa.CheckConstraint("staff_count >= 0", name=op.f("ck_quota_cell_ck_quota_cell_staff_count")),
        nullable=True,
    ))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE quota_cell DROP COLUMN staff_count")
    else:
        op.drop_column("quota_cell", "staff_count")

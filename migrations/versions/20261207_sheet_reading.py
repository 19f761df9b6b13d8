"""sheets read by machine: the keyer kind and reading of a keying, and the pages read

Revision ID: sheet_reading
Revises: imported_submission
"""
import sqlalchemy as sa
from alembic import op

revision = "sheet_reading"
down_revision = "imported_submission"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("keying") as batch:
        batch.add_column(sa.Column("keyer", sa.String(16), nullable=False, server_default="clerk"))
        batch.add_column(sa.Column("reading", sa.JSON(), nullable=True))
    op.create_table(
        "sheet_scan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sheet_id", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("reading", sa.JSON(), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["sheet_id"], ["sheet.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sheet_id", "page", name="uq_sheet_scan_page"),
    )
    op.create_index("ix_sheet_scan_sheet_id", "sheet_scan", ["sheet_id"])


def downgrade():
    op.drop_index("ix_sheet_scan_sheet_id", table_name="sheet_scan")
    op.drop_table("sheet_scan")
    with op.batch_alter_table("keying") as batch:
        batch.drop_column("reading")
        batch.drop_column("keyer")

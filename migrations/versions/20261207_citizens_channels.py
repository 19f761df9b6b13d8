"""Citizens' rounds: the investigator of a paper sheet, of a sealed ballot and of a response; receipt codes

Revision ID: citizens_channels
Revises: frames_phuctra

A citizens' round's paper sheets are handed out by Post Office investigators (``sheet.investigator``); its
keyed answers go through the ballot box with their investigator (``ballot.investigator``) and come out as
responses that name the investigator but no sheet (``response.investigator``). A receipt code printed on a
one-stop office's result slip is stored only as a keyed digest with its quota cell and field
(``receipt_code``): never the code, never the dossier.
"""
import sqlalchemy as sa
from alembic import op

revision = "citizens_channels"
down_revision = "frames_phuctra"
branch_labels = None
depends_on = None

_COLUMNS = ("sheet", "ballot", "response")


def upgrade() -> None:
    for table in _COLUMNS:
        op.add_column(table, sa.Column("investigator", sa.String(32), nullable=True))
    op.create_table(
        "receipt_code",
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("quota_cell_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["quota_cell_id"], ["quota_cell.id"],
                                name=op.f("fk_receipt_code_quota_cell_id_quota_cell"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_receipt_code")),
    )
    op.create_index(op.f("ix_receipt_code_quota_cell_id"), "receipt_code", ["quota_cell_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_receipt_code_quota_cell_id"), table_name="receipt_code")
    op.drop_table("receipt_code")
    for table in _COLUMNS:
        # SQLite (3.35+) drops a plain column in place; a batch rebuild would cascade through referring rows.
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE {table} DROP COLUMN investigator")
        else:
            op.drop_column(table, "investigator")

"""the sealed ballot box: online submissions wait sealed until their day is over

Revision ID: ballot_box
Revises: random_keys
"""
import sqlalchemy as sa
from alembic import op

revision = "ballot_box"
down_revision = "random_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ballot",
        # SQLite: INTEGER PRIMARY KEY, the rowid itself, as the response and answer keys
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("quota_cell_id", sa.Integer(), nullable=False),
        sa.Column("submitted_on", sa.Date(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["quota_cell_id"], ["quota_cell.id"], name=op.f("fk_ballot_quota_cell_id_quota_cell"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ballot")),
    )
    op.create_index(op.f("ix_ballot_quota_cell_id"), "ballot", ["quota_cell_id"])
    op.create_index(op.f("ix_ballot_submitted_on"), "ballot", ["submitted_on"])


def downgrade() -> None:
    # Sealed ballots are answers not yet released: going back would lose them.
    waiting = op.get_bind().scalar(sa.text("SELECT count(*) FROM ballot"))
    if waiting:
        raise RuntimeError(f"{waiting} sealed ballots are waiting: release them (round release) before downgrading")
    op.drop_index(op.f("ix_ballot_submitted_on"), table_name="ballot")
    op.drop_index(op.f("ix_ballot_quota_cell_id"), table_name="ballot")
    op.drop_table("ballot")

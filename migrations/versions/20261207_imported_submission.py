"""submissions imported from ODK Central and KoboToolbox exports are remembered by a digest of their key; a
spent code keeps a keyed digest of the answers it sent, so a resend with other answers is refused

Revision ID: imported_submission
Revises: spent_codes
"""
import sqlalchemy as sa
from alembic import op

revision = "imported_submission"
down_revision = "spent_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imported_submission",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("mark", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["round.id"], name=op.f("fk_imported_submission_round_id_round"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("round_id", "mark", name=op.f("pk_imported_submission")),
    )
    op.add_column("spent_code", sa.Column("answers_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE spent_code DROP COLUMN answers_digest")  # (SQLite 3.35+ and PostgreSQL)
    op.drop_table("imported_submission")

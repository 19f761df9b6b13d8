"""sheet records the questionnaire version printed on it

Revision ID: 0003
Revises: quotas
Create Date: 2026-11-24 04:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "quotas"
branch_labels = None
depends_on = None

FK = "fk_sheet_questionnaire_version_id_questionnaire_version"


def upgrade() -> None:
    # A plain ADD COLUMN (no batch rebuild): SQLite accepts an inline REFERENCES on a nullable new column,
    # and rebuilding the sheet table would cascade through the rows that refer to it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE sheet ADD COLUMN questionnaire_version_id INTEGER "
                   f"CONSTRAINT {FK} REFERENCES questionnaire_version (id)")
    else:
        op.add_column("sheet", sa.Column("questionnaire_version_id", sa.Integer(), nullable=True))
        op.create_foreign_key(FK, "sheet", "questionnaire_version", ["questionnaire_version_id"], ["id"])
    # Sheets printed before this revision were printed with the round's version of their form at the time.
    op.execute(
        "UPDATE sheet SET questionnaire_version_id = (SELECT rf.questionnaire_version_id FROM round_form rf "
        "JOIN quota_cell qc ON qc.round_id = rf.round_id AND qc.form_code = rf.form_code "
        "WHERE qc.id = sheet.quota_cell_id)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_column("sheet", "questionnaire_version_id")
    else:
        op.drop_constraint(FK, "sheet", type_="foreignkey")
        op.drop_column("sheet", "questionnaire_version_id")

"""a round declares its structure: agency kinds are data, divisions belong to a supervising form, and an
agency can name the agencies of earlier rounds it continues

Revision ID: 0006
Revises: access
Create Date: 2026-12-01 11:00:00
"""
import json
import re

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "access"
branch_labels = None
depends_on = None

KIND_CHECK = "ck_agency_agency_kind"
OLD_KINDS = "('department', 'district', 'vertical')"
#: Before this revision every round had the three kinds written into the code, their labels, the own-staff
#: forms CC-CT, CC-ND, CC-CH, and LĐ-CP's district divisions; existing rounds get exactly that structure.
THREE_TIER = {
    "kinds": [
        {"code": "department", "label": "Sở, ban, ngành", "plural": "Các sở, ban, ngành"},
        {"code": "district", "label": "UBND cấp huyện", "plural": "UBND các huyện, thị xã, thành phố"},
        {"code": "vertical", "label": "Cơ quan ngành dọc", "plural": "Các cơ quan ngành dọc cấp tỉnh"},
    ],
    "own_staff_forms": ["CC-CT", "CC-ND", "CC-CH"],
    "supervision": {"LĐ-CP": {"cells_per": "district", "unit": "phòng chuyên môn", "supervisor": "sở quản lý"}},
}


def _sqlite_agency_sql(rewrite) -> None:
    """Change the agency table's declaration in place (SQLite's documented procedure for dropping or adding
    a CHECK constraint, which leaves the stored rows as they are). Rebuilding the table instead would
    cascade-delete every quota cell, sheet and response that refers to an agency."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'agency'").scalar()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'agency'",
                         (rewrite(sql),))
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        def widen(sql: str) -> str:
            sql = re.sub(r",\s*CONSTRAINT " + KIND_CHECK + r" CHECK \(kind IN \([^)]*\)\)", "", sql)
            return sql.replace("kind VARCHAR(16) NOT NULL", "kind VARCHAR(32) NOT NULL")

        _sqlite_agency_sql(widen)
    else:
        op.drop_constraint(op.f(KIND_CHECK), "agency", type_="check")
        op.alter_column("agency", "kind", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False)

    op.add_column("round", sa.Column("structure", sa.JSON(), nullable=False, server_default="{}"))
    op.get_bind().execute(sa.text("UPDATE round SET structure = :s"), {"s": json.dumps(THREE_TIER, ensure_ascii=False)})
    op.add_column("division", sa.Column("form_code", sa.String(16), nullable=False, server_default=""))
    op.get_bind().execute(sa.text("UPDATE division SET form_code = :f"), {"f": "LĐ-CP"})

    op.create_table(
        "agency_continuation",
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("round_code", sa.String(32), nullable=False),
        sa.Column("agency_code", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], name="fk_agency_continuation_agency_id_agency",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agency_id", "position", name="pk_agency_continuation"),
    )


def downgrade() -> None:
    op.drop_table("agency_continuation")
    # Plain DROP COLUMN (SQLite 3.35+): a batch rebuild of round would cascade through everything below it.
    op.drop_column("division", "form_code")
    op.drop_column("round", "structure")
    if op.get_bind().dialect.name == "sqlite":
        def narrow(sql: str) -> str:
            sql = sql.replace("kind VARCHAR(32) NOT NULL", "kind VARCHAR(16) NOT NULL")
            return sql.rstrip().rstrip(")").rstrip() + f", \n\tCONSTRAINT {KIND_CHECK} CHECK (kind IN {OLD_KINDS})\n)"

        _sqlite_agency_sql(narrow)
    else:
        op.alter_column("agency", "kind", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False)
        op.create_check_constraint(op.f(KIND_CHECK), "agency", f"kind IN {OLD_KINDS}")

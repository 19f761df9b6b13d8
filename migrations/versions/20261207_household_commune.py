"""Citizens' rounds: the commune a household lives in, on its paper sheet, its sealed ballot and its response

Revision ID: household_commune
Revises: citizens_channels

A household sampled from a household frame lives in the frame's cell, a commune; the sheet it is handed
may rate that commune's People's Committee or a department (``sheet.commune``). The commune travels with
the keyed answers through the ballot box (``ballot.commune``) and is written on the response
(``response.commune``) only once at least k of the round's responses name it, so the results can be given
per commune of residence without narrowing a response to fewer than k households.
"""
import sqlalchemy as sa
from alembic import op

revision = "household_commune"
down_revision = "citizens_channels"
branch_labels = None
depends_on = None

_COLUMNS = ("sheet", "ballot", "response")


def upgrade() -> None:
    for table in _COLUMNS:
        op.add_column(table, sa.Column("commune", sa.String(32), nullable=True))


def downgrade() -> None:
    for table in _COLUMNS:
        # SQLite (3.35+) drops a plain column in place; a batch rebuild would cascade through referring rows.
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE {table} DROP COLUMN commune")
        else:
            op.drop_column(table, "commune")

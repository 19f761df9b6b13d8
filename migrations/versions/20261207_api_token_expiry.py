"""API tokens expire: staff_user.api_token_expires_at

Revision ID: api_token_expiry
Revises: ballot_box
"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "api_token_expiry"
down_revision = "ballot_box"
branch_labels = None
depends_on = None

#: Tokens made before expiry existed keep working this long after the upgrade (the default lifetime).
EXISTING_TOKEN_DAYS = 90


def upgrade() -> None:
    op.add_column("staff_user", sa.Column("api_token_expires_at", sa.DateTime(timezone=True), nullable=True))
    staff_user = sa.table("staff_user", sa.column("api_token_hash", sa.String(64)),
                          sa.column("api_token_expires_at", sa.DateTime(timezone=True)))
    op.execute(staff_user.update().where(staff_user.c.api_token_hash.is_not(None)).values(
        api_token_expires_at=datetime.now(timezone.utc) + timedelta(days=EXISTING_TOKEN_DAYS)))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; a batch rebuild would cascade through referring rows.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE staff_user DROP COLUMN api_token_expires_at")
    else:
        op.drop_column("staff_user", "api_token_expires_at")

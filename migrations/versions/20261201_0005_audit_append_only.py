"""the audit log is append-only: triggers refuse UPDATE and DELETE of audit_event

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:00:00
"""
from alembic import op

from survey_service.models import AUDIT_APPEND_ONLY_DDL

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DROP = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_event_no_update", "DROP TRIGGER IF EXISTS audit_event_no_delete"],
    "postgresql": ["DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
                   "DROP FUNCTION IF EXISTS audit_event_append_only()"],
}


def upgrade() -> None:
    for statement in AUDIT_APPEND_ONLY_DDL[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP[op.get_bind().dialect.name]:
        op.execute(statement)

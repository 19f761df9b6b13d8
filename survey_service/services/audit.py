"""The audit log: every staff action and every change to stored answers, with old and new value."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import AuditEvent, StaffUser


def record(
    session: Session,
    action: str,
    *,
    user: StaffUser | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: object = None,
    old=None,
    new=None,
) -> AuditEvent:
    """Add an audit event to the session (the caller's transaction decides whether it is kept)."""
    event = AuditEvent(**_fields(action, user, actor, object_type, object_id, old, new))
    session.add(event)
    return event


_INSERT = sa.insert(AuditEvent.__table__)


def insert(
    session: Session,
    action: str,
    *,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: object = None,
    old=None,
    new=None,
) -> None:
    """Write an audit event now with a plain INSERT, in the caller's transaction: for busy paths that
    never read the event back and should not pay for an ORM flush."""
    session.execute(_INSERT, _fields(action, None, actor, object_type, object_id, old, new))


def _fields(action, user, actor, object_type, object_id, old, new) -> dict:
    return {
        "user_id": user.id if user is not None else None,
        "actor": actor or ("staff" if user is not None else "system"),
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "old_value": old,
        "new_value": new,
    }


"""Data safety: ``survey-service backup`` / ``restore`` round-trip every table on both databases, and the
audit log is append-only in the ORM and in the database (triggers, also added by a migration)."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from survey_service.db import Base
from survey_service.models import AppendOnlyError, AuditEvent
from survey_service.services import audit, backup, invitations, sheets
from tests.results.conftest import Builder


@pytest.fixture
def filled(session, loaded_round, make_user):
    """A round with imported responses and answers, codes, sheets, staff and audit events."""
    builder = Builder(session, loaded_round)
    builder.load([builder.row("CC-CT", "SNV", "4"), builder.row("LĐH-CH", "SNV", "2", KN="Cần “đúng hẹn” hơn.")])
    while_collecting = date(2023, 10, 1)
    invitations.issue_codes(session, invitations.find_cell(session, loaded_round, "CC-CT", "SNV"), 3,
                            today=while_collecting, actor="test")
    sheets.issue_sheets(session, loaded_round, sheets.paper_cells(session, loaded_round, form_code="LĐH-CH")[:2],
                        today=while_collecting, actor="test")
    make_user("clerk")
    session.commit()


def snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    with engine.connect() as con:
        return {t.name: [tuple(r) for r in con.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for t in Base.metadata.sorted_tables}


def test_backup_and_restore_round_trip_every_table(app, filled, runner, session, tmp_path):
    engine = app.extensions["db_engine"]
    before = snapshot(engine)
    assert all(before[t] for t in ("response", "answer", "invitation_code", "sheet", "staff_user", "audit_event"))
    out = tmp_path / "survey.backup"
    result = runner.invoke(args=["backup", str(out)])
    assert result.exit_code == 0, result.output
    assert "Backup written" in result.output and out.stat().st_size > 0

    session.close()
    Base.metadata.drop_all(engine)
    engine.dispose()
    try:
        assert not sa.inspect(engine).get_table_names()
        result = runner.invoke(args=["restore", str(out), "--yes"])
        assert result.exit_code == 0, result.output
        engine.dispose()
        assert snapshot(engine) == before
    finally:
        Base.metadata.create_all(engine)  # the next tests need the schema even if this one failed

    # Sequences and triggers came back too: new rows get fresh ids, audit events still cannot change.
    audit.insert(session, "after.restore", actor="test")
    session.commit()
    assert session.scalar(sa.select(sa.func.max(AuditEvent.id))) > max(r[0] for r in before["audit_event"])
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with engine.begin() as con:
            con.execute(sa.text("DELETE FROM audit_event"))


def test_backup_refuses_to_overwrite_and_restore_refuses_a_foreign_file(app, filled, runner, tmp_path):
    existing = tmp_path / "exists.backup"
    existing.write_text("keep me")
    result = runner.invoke(args=["backup", str(existing)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert existing.read_text() == "keep me"

    before = snapshot(app.extensions["db_engine"])
    for content in (b"not a database", b"SQLite format 3\x00" + b"\x00" * 200):
        bogus = tmp_path / "bogus.backup"
        bogus.write_bytes(content)
        result = runner.invoke(args=["restore", str(bogus), "--yes"])
        assert result.exit_code == 1 and "was not changed" in result.output, result.output
    assert snapshot(app.extensions["db_engine"]) == before


def test_restore_asks_before_replacing(app, filled, runner, tmp_path):
    out = tmp_path / "survey.backup"
    assert runner.invoke(args=["backup", str(out)]).exit_code == 0
    result = runner.invoke(args=["restore", str(out)], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output


def test_sqlite_backup_is_consistent_while_the_service_writes(tmp_path):
    """The online backup API copies a consistent state even with an open write transaction."""
    from survey_service.db import make_engine

    db = tmp_path / "live.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    Base.metadata.create_all(engine)
    with engine.begin() as con:
        con.execute(sa.insert(AuditEvent.__table__), [{"actor": "t", "action": f"a{i}"} for i in range(100)])
    with engine.connect() as writer:
        writer.execute(sa.insert(AuditEvent.__table__), {"actor": "t", "action": "uncommitted"})
        report = backup.backup(f"sqlite:///{db}", tmp_path / "copy.sqlite")
        writer.rollback()
    engine.dispose()
    copy = make_engine(f"sqlite:///{report.path}")
    with copy.connect() as con:
        assert con.scalar(sa.select(sa.func.count()).select_from(AuditEvent.__table__)) == 100
    copy.dispose()


# --- the audit log is append-only --------------------------------------------------------------------------
def test_audit_events_cannot_be_changed_or_deleted_through_the_orm(app, session, make_user):
    make_user("admin")
    event = session.scalars(sa.select(AuditEvent)).first()
    event.action = "rewritten"
    with pytest.raises(AppendOnlyError):
        session.commit()
    session.rollback()
    session.delete(session.scalars(sa.select(AuditEvent)).first())
    with pytest.raises(AppendOnlyError):
        session.commit()
    session.rollback()
    for statement in (sa.update(AuditEvent).values(action="x"), sa.delete(AuditEvent),
                      sa.update(AuditEvent.__table__).values(actor="x"), sa.delete(AuditEvent.__table__)):
        with pytest.raises(AppendOnlyError):
            session.execute(statement)
        session.rollback()
    assert session.scalars(sa.select(AuditEvent.action)).all() == ["user.create"]


def test_audit_events_cannot_be_changed_or_deleted_in_the_database(app, session, make_user):
    """Even SQL that bypasses the ORM is refused by the database's triggers."""
    make_user("admin")
    engine = app.extensions["db_engine"]
    for sql in ("UPDATE audit_event SET action = 'rewritten'", "DELETE FROM audit_event WHERE id > 0"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as con:
                con.execute(sa.text(sql))
    with engine.connect() as con:
        assert con.scalar(sa.text("SELECT count(*) FROM audit_event WHERE action = 'user.create'")) == 1


def test_migrated_database_has_the_append_only_triggers(empty_database):
    from survey_service import migrate
    from survey_service.db import make_engine

    migrate.upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.begin() as con:
            con.execute(sa.insert(AuditEvent.__table__), {"actor": "t", "action": "kept"})
        for sql in ("UPDATE audit_event SET action = 'x'", "DELETE FROM audit_event"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with engine.begin() as con:
                    con.execute(sa.text(sql))
    finally:
        engine.dispose()

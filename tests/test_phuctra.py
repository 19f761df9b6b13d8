"""Phúc tra: the sealed contact vault, the stratified draw with paradata flags from the sheet ledger, process-only
outcomes, quarantined investigators, and closing, after which no export, log or backup holds a contact;
through the services and the CLI, on SQLite and PostgreSQL."""
from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from survey_service import db
from survey_service.models import AnswerPattern, AuditEvent, Contact, ContactKind, RecheckItem, RecheckOutcome
from survey_service.services import backup, keying, phuctra, rounds, sheets
from survey_service.services.phuctra import ContactEntry, RecheckError
from tests.conftest import collect_from_today
from tests.portal.test_adversary import _pg_data_directory

KEYS = ["test-sheet-key"]
SECRET = "test-secret"
NAMES = ["Nguyễn Thị Hoà Bình", "Trần Văn Phúc Tra", "Lê Thị Nhận Tiền"]
PHONES = ["0905 123 456", "0912.765.432", "+84 236 3822 111"]


@pytest.fixture
def fieldwork(session, loaded_round, make_user):
    """QNA-2023 collecting, its LĐH-CH sheets issued; investigator A returned 30 of them on one day, B 10; two
    of B's keyed with the same answers, and two of A's marked with the same answers at keying (as a sheet
    whose answers go into the ballot box is)."""
    collect_from_today(session, loaded_round)
    loaded_round.settings = {**loaded_round.settings, "phuc_tra_sheets_per_day": 25}
    a, b = make_user("clerk", username="dtv_a"), make_user("clerk", username="dtv_b")
    issued = sheets.issue_sheets(session, loaded_round, sheets.paper_cells(session, loaded_round, form_code="LĐH-CH"),
                                 actor="test")
    assert len(issued) == 40
    sheets.record_returns(session, loaded_round, [s.serial for s in issued[:30]], KEYS, by=a)
    sheets.record_returns(session, loaded_round, [s.serial for s in issued[30:]], KEYS, by=b)
    for sheet in issued[30:32]:
        form = keying.sheet_form(session, sheet)
        data = {keying.slot_name(row.key, item.code): "4"
                for row in form.rows for item in form.questionnaire.scale_items}
        keying.key_sheet(session, sheet, b, data)
    for sheet in issued[:2]:
        phuctra.record_pattern(session, sheet, {"*": {f"Q{i}": "3" for i in range(6)}}, secret=SECRET)
    session.commit()
    return {"round": loaded_round, "a": a, "b": b, "sheets": issued}


def contacts(issued):
    return [ContactEntry(issued[30].serial, ContactKind.RESPONDENT, NAMES[0], PHONES[0]),
            ContactEntry(issued[31].serial, ContactKind.RESPONDENT, NAMES[1], PHONES[1]),
            ContactEntry(issued[31].serial, ContactKind.FEE_RECIPIENT, NAMES[2], PHONES[2])]


def check_the_vault(session, fieldwork):
    """Contacts are sealed, padded, opened only with the secret, and checked row by row."""
    rnd, issued = fieldwork["round"], fieldwork["sheets"]
    assert phuctra.store_contacts(session, rnd, contacts(issued), secret=SECRET, actor="test") == 3
    session.commit()
    stored = " ".join(c.sealed for c in session.scalars(sa.select(Contact)))
    assert not any(text in stored for text in NAMES + PHONES)
    assert len({len(c.sealed) for c in session.scalars(sa.select(Contact))}) == 1  # padded: lengths tell nothing
    opened = phuctra.open_contacts(session, rnd, [issued[31].serial], secret=SECRET, actor="test")
    assert [(c.kind, c.name, c.phone) for c in opened[issued[31].serial]] == [
        (ContactKind.RESPONDENT, NAMES[1], PHONES[1]), (ContactKind.FEE_RECIPIENT, NAMES[2], PHONES[2])]
    assert phuctra.open_contacts(session, rnd, [issued[31].serial], secret="another", actor="test")[
        issued[31].serial][0].name == "?"
    with pytest.raises(RecheckError) as bad:
        phuctra.store_contacts(session, rnd, [ContactEntry("QNA2023-99999-X", ContactKind.RESPONDENT, "A", "12"),
                                              ContactEntry(issued[0].serial, ContactKind.RESPONDENT, "", "0905123456")],
                               secret=SECRET, actor="test")
    assert "Dòng 1: số phiếu QNA2023-99999-X không có" in str(bad.value)
    assert "Dòng 1: số điện thoại phải gồm" in str(bad.value) and "Dòng 2: họ tên phải có" in str(bad.value)
    with pytest.raises(RecheckError, match="Dòng 3: loại phải là"):
        phuctra.parse_contacts(f"serial,kind,name,phone\n{issued[0].serial},người trả lời,A,0905123456\n"
                               f"{issued[1].serial},khác,B,0905123457\n".encode(), "c.csv")


def test_the_vault_is_sealed_then_the_draw_stratifies_flags_and_quarantines(session, fieldwork):
    check_the_vault(session, fieldwork)
    rnd, issued = fieldwork["round"], fieldwork["sheets"]
    report = phuctra.draw(session, rnd, today=rounds.local_today(), secret=SECRET, seed=11, actor="test")
    session.commit()
    drawn = {i.sheet.serial: i for i in phuctra.items(session, rnd)}
    assert report.returned == 40 and report.busy_day == 30  # A returned 30 > 25 in one day
    assert {s for s, i in drawn.items() if "identical" in i.reasons} == {s.serial for s in issued[:2] + issued[30:32]}
    randoms = [i for i in drawn.values() if "random" in i.reasons]
    assert sorted(i.investigator for i in randoms) == ["dtv_a", "dtv_a", "dtv_b"]  # ceil(5 % of 30), ceil(5 % of 10)
    with pytest.raises(RecheckError, match="đã được mở"):
        phuctra.draw(session, rnd, today=rounds.local_today(), secret=SECRET, actor="test")

    today = rounds.local_today()
    item_a = drawn[issued[0].serial]
    assert phuctra.record_outcome(session, item_a, reached=True, received=True, self_filled=True, prompted=False,
                                  paid=True, today=today, actor="test") is RecheckOutcome.CONFIRMED
    assert phuctra.record_outcome(session, drawn[issued[30].serial], reached=True, received=True,
                                  self_filled=False, today=today, actor="test") is RecheckOutcome.FAILED
    assert phuctra.quarantined_investigators(session, rnd.id) == set()  # one failure is not yet a pattern
    assert phuctra.record_outcome(session, drawn[issued[31].serial], reached=False, today=today,
                                  actor="test") is RecheckOutcome.NOT_REACHED
    with pytest.raises(RecheckError, match="có nhận phiếu hay không"):
        phuctra.record_outcome(session, drawn[issued[31].serial], reached=True, today=today, actor="test")
    phuctra.record_outcome(session, drawn[issued[31].serial], reached=True, received=False, today=today,
                           actor="test")
    session.commit()
    assert phuctra.quarantined_investigators(session, rnd.id) == {"dtv_b"}
    rows = {r.investigator: r for r in phuctra.summary(session, rnd)}
    assert (rows["dtv_b"].failed, rows["dtv_b"].failure_rate, rows["dtv_b"].quarantined) == (2, 1.0, True)
    assert phuctra.pass_rate(session, rnd.id) == (1, 3)
    actions = list(session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action.like("phuctra.%"))))
    assert actions.count("phuctra.outcome") == 4 and "phuctra.quarantine" in actions

    quarantine = phuctra.quarantines(session, rnd.id)[0]
    with pytest.raises(RecheckError, match="kết luận"):
        phuctra.lift(session, quarantine, reason="", today=today, actor="test")
    phuctra.lift(session, quarantine, reason="Đã xác minh lại với người trả lời", today=today, actor="test")
    assert phuctra.quarantined_investigators(session, rnd.id) == set()


def test_the_cli_runs_phuctra(runner, session, fieldwork, tmp_path):
    rnd, issued = fieldwork["round"], fieldwork["sheets"]
    path = tmp_path / "lienhe.csv"
    path.write_text(f"số phiếu,loại,họ tên,điện thoại\n{issued[30].serial},người trả lời,{NAMES[0]},{PHONES[0]}\n",
                    encoding="utf-8")
    result = runner.invoke(args=["phuctra", "contacts", "--round", rnd.code, str(path)])
    assert result.exit_code == 0 and "Đã niêm phong 1 liên hệ" in result.output, result.output
    result = runner.invoke(args=["phuctra", "draw", "--round", rnd.code, "--seed", "-1"])
    assert result.exit_code == 1 and "Hạt giống ngẫu nhiên" in result.output
    result = runner.invoke(args=["phuctra", "draw", "--round", rnd.code, "--seed", "4"])
    assert result.exit_code == 0 and "trong 40 phiếu thu về" in result.output, result.output
    serial = issued[30].serial
    result = runner.invoke(args=["phuctra", "outcome", "--round", rnd.code, serial, "--reached", "--received",
                                 "--not-self-filled"])
    assert result.exit_code == 0 and "Không đạt" in result.output, result.output
    unknown = session.scalar(sa.select(RecheckItem.id).where(RecheckItem.sheet_id == issued[1].id))
    if unknown is None:
        result = runner.invoke(args=["phuctra", "outcome", "--round", rnd.code, issued[1].serial, "--not-reached"])
        assert result.exit_code == 1 and "không được chọn phúc tra" in result.output
    result = runner.invoke(args=["phuctra", "status", "--round", rnd.code])
    assert "dtv_b" in result.output and "dtv_a" in result.output
    result = runner.invoke(args=["phuctra", "close", "--round", rnd.code])
    assert result.exit_code == 0 and "xóa 1 liên hệ" in result.output, result.output
    result = runner.invoke(args=["phuctra", "contacts", "--round", rnd.code, str(path)])
    assert result.exit_code == 1 and "đã đóng" in result.output


def _pg_dump_text(path) -> bytes:
    return subprocess.run(["pg_restore", "--file=-", str(path)], capture_output=True, check=True).stdout


def _vault_files(session, database_url) -> bytes:
    """What an adversary copying the database's files reads of the vault: SQLite's database file and its
    write-ahead log; PostgreSQL's files of the vault's tables, after a checkpoint writes their pages there."""
    session.commit()
    if session.get_bind().dialect.name == "sqlite":
        path = Path(sa.engine.make_url(database_url).database)
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    root = _pg_data_directory(database_url)
    if root is None:
        pytest.skip("the PostgreSQL data directory cannot be read from here (needs root and pg_lsclusters)")
    port = str(sa.engine.make_url(database_url).port or 5432)
    subprocess.run(["su", "postgres", "-c", f"psql -p {port} -qc CHECKPOINT"], check=True)
    found = b""
    for table in db.VAULT_TABLES:
        relative = Path(session.scalar(sa.text("SELECT pg_relation_filepath(:t)"), {"t": table}))
        found += b"".join(p.read_bytes() for p in sorted((root / relative).parent.glob(relative.name + "*"))
                          if re.fullmatch(r"\d+(\.\d+)?", p.name))
    session.commit()
    return found


def test_no_export_log_or_backup_taken_after_closing_holds_the_vault(app, session, fieldwork, staff_client, tmp_path,
                                                                     caplog):
    """Contacts go in through the auditor's page, are read back there, then phúc tra closes: every export,
    the application's log and a backup made afterwards are searched for the names, the numbers and the
    sealed values."""
    caplog.set_level(logging.DEBUG)
    rnd, issued = fieldwork["round"], fieldwork["sheets"]
    phuctra.draw(session, rnd, today=rounds.local_today(), secret=SECRET, seed=2, actor="test")
    session.commit()
    client = staff_client("auditor")
    upload = "\n".join(["serial,kind,name,phone"] + [f"{e.serial},{e.kind.value},{e.name},{e.phone}"
                                                     for e in contacts(issued)]).encode()
    response = client.post(f"/phuctra/{rnd.code}/contacts", data={"file": (__import__("io").BytesIO(upload), "c.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(f"/phuctra/{rnd.code}").get_data(as_text=True)
    assert NAMES[0] in page and PHONES[0] in page
    sealed = [c.sealed for c in session.scalars(sa.select(Contact))]
    assert len(sealed) == 3
    before = _vault_files(session, app.config["DATABASE_URL"])
    assert all(s.encode() in before for s in sealed)  # (the raw read finds a live row)
    assert client.post(f"/phuctra/{rnd.code}/close", data={"confirmed": "1"}).status_code == 302
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count()).select_from(Contact)) == 0
    assert session.scalar(sa.select(sa.func.count()).select_from(AnswerPattern)) == 0
    assert NAMES[0] not in client.get(f"/phuctra/{rnd.code}").get_data(as_text=True)

    secrets_ = [t.encode() for t in NAMES + PHONES + sealed]
    admin = staff_client("admin")
    found = {"log": caplog.text.encode()}
    for url in ("/staff/admin/audit.csv", "/staff/admin/audit", f"/staff/responses/{rnd.code}/answers.csv",
                f"/staff/results/{rnd.code}/download.csv", f"/staff/results/{rnd.code}/download.xlsx"):
        response = admin.get(url)
        assert response.status_code == 200, url
        found[url] = response.data
    out = tmp_path / "after-close.backup"
    report = backup.backup(app.config["DATABASE_URL"], out)
    found["backup"] = _pg_dump_text(out) if report.kind == "pg_dump" else out.read_bytes()
    found["database files"] = _vault_files(session, app.config["DATABASE_URL"])  # no deleted row left there
    for where, data in found.items():
        assert not [s for s in secrets_ if s in data], f"{where} holds a contact"
    assert found["backup"]  # (a real backup was searched)

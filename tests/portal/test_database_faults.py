"""The database fails under the portal: unreachable (a PostgreSQL restart), read-only or full (SQLite).
Each is a 503 with ``Retry-After`` and a Vietnamese page, never a 500; nothing is half-stored or corrupted,
and the same submission sent again once the database is back is stored exactly once.

The heavy versions of these faults (a PostgreSQL restart and a killed worker under load) are in
bench/bench_faults.py.
"""
from __future__ import annotations

import re
import sqlite3

import pytest
import sqlalchemy as sa

from survey_service import create_app
from survey_service.models import Ballot, CodeStatus, InvitationCode
from survey_service.services import invitations
from tests.portal.conftest import full_answers

UNAVAILABLE = "không truy cập được cơ sở dữ liệu"
TEXT = "Kiến nghị: " + "ệ" * 1980  # 5,950 bytes in UTF-8: more than a page, so it needs new ones


def _open_form(client, code: str) -> dict:
    """Follow the invitation link to the questionnaire: the form's action and hidden fields."""
    page = client.get(f"/c/{code}", follow_redirects=True)
    assert page.status_code == 200, page.get_data(as_text=True)
    form = re.search(r'<form\b[^>]*class="questionnaire"[^>]*>.*?</form>', page.get_data(as_text=True), re.S)
    hidden = [dict(re.findall(r'\b(name|value)="([^"]*)"', tag))
              for tag in re.findall(r'<input\b[^>]*type="hidden"[^>]*>', form.group(0))]
    return {"action": re.search(r'\baction="([^"]+)"', form.group(0)).group(1),
            "fields": {h["name"]: h.get("value", "") for h in hidden}}


def _submit(client, opened: dict, answers: dict):
    """The respondent's submit of the form opened earlier."""
    return client.post(opened["action"], data={**opened["fields"], **answers, "action": "submit"})


def _same_browser(client, app):
    """A client of ``app`` holding ``client``'s cookies: the respondent's browser, pointed at a server
    whose database has just failed."""
    other, cookie = app.test_client(), client.get_cookie("session")
    if cookie is not None:
        other.set_cookie("session", cookie.value)
    return other


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:500]
    assert response.headers["Retry-After"] == "10"
    assert UNAVAILABLE in response.get_data(as_text=True)


def _app_on(url: str, config: dict):
    return create_app({**config, "DATABASE_URL": url})


def _state(session, code: str) -> tuple:
    session.expire_all()
    status = invitations.statuses(session, "test-secret", list(session.scalars(
        sa.select(InvitationCode).where(InvitationCode.code == code)))).popitem()[1]
    return status, session.scalar(sa.select(sa.func.count()).select_from(Ballot))


def test_unreachable_database_is_a_503_with_retry_after_for_pages_and_api():
    down = _app_on("postgresql+psycopg://survey:survey@127.0.0.1:1/none?connect_timeout=2",
                   {"TESTING": True, "WTF_CSRF_ENABLED": False})
    client = down.test_client()
    for url in ("/", "/c/K7QM-8XRT-4HWP"):  # the link goes on to the form, which needs the database
        _assert_unavailable(client.get(url, follow_redirects=True))
    _assert_unavailable(client.post("/staff/login", data={"username": "giamsat", "password": "x" * 12}))
    api = client.get("/api/v1/rounds/QNA-2023/quotas", headers={"Authorization": "Bearer abc"})
    assert api.status_code == 503 and api.headers["Retry-After"] == "10"
    assert UNAVAILABLE in api.get_json()["message"]


@pytest.fixture
def sqlite_file(app, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("a SQLite file fault")
    return database_url.removeprefix("sqlite:///")


def _integrity(path: str) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def test_read_only_sqlite_file_gives_a_clear_page_and_keeps_everything(app, sqlite_file, issue, questionnaire,
                                                                       client, session):
    [code] = issue("CC-CT", "SNV")
    opened = _open_form(client, code)
    answers = full_answers(questionnaire("CC-CT"), text=TEXT)
    session.close()

    read_only = _app_on(f"sqlite:///file:{sqlite_file}?mode=ro&uri=true", app.config)
    ro_client = _same_browser(client, read_only)
    assert ro_client.get("/").status_code == 200  # reading still works
    _assert_unavailable(_submit(ro_client, opened, answers))
    read_only.extensions["db_engine"].dispose()

    assert _integrity(sqlite_file) == "ok"
    assert _state(session, code) == (CodeStatus.UNUSED, 0)
    done = _submit(client, opened, answers)  # the same submission, once the file is writable again
    assert done.status_code == 200 and "Cảm ơn" in done.get_data(as_text=True)
    assert _submit(client, opened, answers).status_code == 200  # and its retry
    assert _state(session, code) == (CodeStatus.USED, 1)


def test_full_sqlite_file_gives_a_clear_page_and_keeps_everything(app, sqlite_file, issue, questionnaire, client,
                                                                  session):
    [code] = issue("CC-CT", "SNV")
    opened = _open_form(client, code)
    answers = full_answers(questionnaire("CC-CT"), text=TEXT)
    session.close()

    con = sqlite3.connect(sqlite_file)
    con.execute("VACUUM")  # no free pages left to fill
    con.close()
    full = _app_on(f"sqlite:///{sqlite_file}", app.config)

    @sa.event.listens_for(full.extensions["db_engine"], "connect")
    def _no_room_to_grow(dbapi_con, _record):
        pages = dbapi_con.execute("PRAGMA page_count").fetchone()[0]
        dbapi_con.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL on the first new page

    _assert_unavailable(_submit(_same_browser(client, full), opened, answers))
    full.extensions["db_engine"].dispose()

    assert _integrity(sqlite_file) == "ok"
    assert _state(session, code) == (CodeStatus.UNUSED, 0)
    done = _submit(client, opened, answers)
    assert done.status_code == 200 and "Cảm ơn" in done.get_data(as_text=True)
    assert _state(session, code) == (CodeStatus.USED, 1)

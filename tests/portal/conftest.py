"""Fixtures for the online portal: the real round opened around today, codes, answers."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from survey_service.models import Agency, Channel, QuotaCell
from survey_service.services import invitations, rounds
from survey_service.web.respond import local_today


@pytest.fixture
def open_round(loaded_round, session):
    """QNA-2023 with its dates moved so that it is open today."""
    today = local_today()
    loaded_round.opens_on, loaded_round.closes_on = today - timedelta(days=10), today + timedelta(days=30)
    session.commit()
    return loaded_round


def ldcp_cell(session, rnd, district: str = "TAMKY", target: int = 20) -> QuotaCell:
    """The LĐ-CP cell of a district (created if the round's files still list LĐ-CP per department)."""
    agency = session.scalar(sa.select(Agency).where(Agency.round_id == rnd.id, Agency.code == district))
    cell = session.scalar(sa.select(QuotaCell).where(
        QuotaCell.round_id == rnd.id, QuotaCell.form_code == "LĐ-CP", QuotaCell.agency_id == agency.id))
    if cell is None:
        cell = QuotaCell(round_id=rnd.id, form_code="LĐ-CP", agency_id=agency.id, channel=Channel.ONLINE,
                         target=target)
        session.add(cell)
        session.commit()
    return cell


@pytest.fixture
def issue(open_round, session):
    """Factory: ``issue("CC-CT", "SNV", 3)`` issues codes for a cell and returns them (committed)."""
    def make(form: str = "CC-CT", agency: str | None = "SNV", count: int = 1) -> list[str]:
        if form == "LĐ-CP":
            cell = ldcp_cell(session, open_round, agency)
        else:
            cell = invitations.find_cell(session, open_round, form, agency)
        batch = invitations.issue_codes(session, cell, count, actor="test")
        session.commit()
        return [c.code for c in batch.codes]
    return make


def full_answers(questionnaire, value: str = "3", text: str = "Cần rút ngắn thời gian xử lý hồ sơ.") -> dict:
    """{item code: answer} answering every item of a questionnaire."""
    return {item.code: (value if item.kind == "scale" else text) for item in questionnaire.items}


@pytest.fixture
def questionnaire(open_round, session):
    def get(form: str = "CC-CT"):
        return rounds.questionnaire_for(session, open_round, form)
    return get


def until(page, script: str, timeout: float = 15) -> None:
    """Poll ``script`` (a function, awaited) through the DevTools protocol until it is true: Playwright's
    wait_for_function evaluates a string inside the page, which its Content-Security-Policy forbids."""
    import time

    from playwright.sync_api import Error

    end = time.monotonic() + timeout
    while True:
        try:
            if page.evaluate(script):
                return
        except Error as exc:  # the page replaced by the answer it got (the thank-you page) while asked
            last = exc
        else:
            last = None
        if time.monotonic() > end:
            raise AssertionError(f"still false after {timeout} s: {script[:80]} ({last})")
        page.wait_for_timeout(100)

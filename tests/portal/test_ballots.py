"""The sealed ballot box: what a submission stores, and how ballots become responses."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import Answer, Ballot, CodeStatus, InvitationCode, QuotaCell, Response
from survey_service.services import ballots, portal, rounds
from tests.portal.conftest import full_answers

TODAY = rounds.local_today()
SECRET = "test-secret"


def _count(session, model, *where) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _submit(session, code: str, answers: dict, *, today=TODAY, division: str | None = None) -> None:
    access = portal.open_code(session, code, secret=SECRET, today=today, start=True)
    if division:
        access = portal.choose_division(session, access, division, today=today)
        answers = {a.code: answers for a in access.rated_agencies}
    else:
        answers = {access.cell.agency.code: answers}
    assert portal.submit(session, access, answers, portal.new_submission_id(), today=today)
    session.commit()


def test_every_ballot_of_a_form_seals_to_one_length(issue, session, questionnaire):
    q = questionnaire("CC-CT")
    [text] = q.text_items
    codes = issue("CC-CT", "SNV", 3)
    _submit(session, codes[0], {i.code: "1" for i in q.scale_items})  # no text at all
    _submit(session, codes[1], full_answers(q, text="Ngắn."))
    _submit(session, codes[2], full_answers(q, value="K", text="ế" * text.max_length))  # the longest text
    assert len(set(session.scalars(sa.select(sa.func.length(Ballot.sealed))))) == 1
    ld = questionnaire("LĐ-CP")
    [a, b] = issue("LĐ-CP", "TAMKY", 2)
    _submit(session, a, {i.code: "2" for i in ld.scale_items}, division="KTHT")
    _submit(session, b, full_answers(ld, text="\n" * text.max_length), division="KTHT")
    lengths = session.execute(sa.select(Ballot.quota_cell_id, sa.func.length(Ballot.sealed))).all()
    assert len({n for _, n in lengths}) == 2  # one per form (and number of departments rated)


def test_ballots_of_past_days_are_released_and_todays_wait(issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    yesterday = TODAY - timedelta(days=1)
    early, late = issue("CC-CT", "SNV", 2)
    _submit(session, early, full_answers(q, text="Hôm qua."), today=yesterday)
    _submit(session, late, full_answers(q, text="Hôm nay."))
    assert _count(session, Response) == 0

    released = ballots.release(session, open_round, SECRET, today=TODAY)
    session.commit()
    assert (released.ballots, released.responses, released.waiting, released.unreadable) == (1, 1, 1, 0)
    assert session.scalars(sa.select(Response.submitted_on)).all() == [yesterday]
    assert session.scalar(sa.select(Answer.value).where(Answer.item_code == q.text_items[0].code)) == "Hôm qua."
    assert session.scalars(sa.select(Ballot.submitted_on)).all() == [TODAY]
    # tomorrow today's ballot goes too; a release with nothing due changes nothing
    assert ballots.release(session, open_round, SECRET, today=TODAY + timedelta(days=1)).ballots == 1
    assert ballots.release(session, open_round, SECRET, today=TODAY + timedelta(days=1)).ballots == 0
    session.commit()
    assert _count(session, Response) == 2 and _count(session, Ballot) == 0


def test_closing_the_round_releases_every_ballot(issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    for code in issue("CC-CT", "SNV", 3):
        _submit(session, code, full_answers(q))
    released = rounds.close(session, open_round, secret=SECRET, actor="test")
    session.commit()
    assert released.ballots == 3 and _count(session, Ballot) == 0
    assert len(set(session.scalars(sa.select(Response.respondent_key)))) == 3


def test_a_page_opened_before_the_round_closed_cannot_submit_after(issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    [code] = issue("CC-CT", "SNV")
    access = portal.open_code(session, code, secret=SECRET, today=TODAY, start=True)
    session.commit()
    rounds.close(session, open_round, secret=SECRET, actor="test")
    session.commit()
    with pytest.raises(portal.Refusal) as refused:
        portal.submit(session, access, {"SNV": full_answers(q)}, portal.new_submission_id(), today=TODAY)
    assert refused.value.reason == "closed"
    session.rollback()
    assert _count(session, Ballot) == _count(session, Response) == 0
    assert session.scalar(sa.select(InvitationCode.status).where(InvitationCode.code == code)) is CodeStatus.UNUSED


def test_a_close_waits_for_a_submission_in_flight_and_releases_it(issue, session, questionnaire, open_round):
    """The submission has spent its code and cast its ballot, not yet committed, when the round is closed:
    the close waits for it (SQLite: for the one writer; PostgreSQL: for the round row's lock) and releases
    its ballot, so no ballot is left in a closed round's box."""
    q = questionnaire("CC-CT")
    [code] = issue("CC-CT", "SNV")
    engine = session.get_bind()
    submitting, closing = Session(engine), Session(engine)
    access = portal.open_code(submitting, code, secret=SECRET, today=TODAY, start=True)
    submitting.commit()
    assert portal.submit(submitting, access, {"SNV": full_answers(q)}, portal.new_submission_id(), today=TODAY)
    results = {}

    def close():
        results["released"] = rounds.close(closing, closing.get(type(open_round), open_round.id), secret=SECRET,
                                           actor="test").ballots
        closing.commit()

    thread = threading.Thread(target=close)
    thread.start()
    thread.join(0.5)  # it waits for the submission
    assert thread.is_alive()
    submitting.commit()
    thread.join(30)
    submitting.close(), closing.close()
    assert results == {"released": 1}
    assert _count(session, Ballot) == 0 and _count(session, Response) == 1


def test_a_ballot_sealed_under_another_secret_stays_in_the_box(issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    [code] = issue("CC-CT", "SNV")
    _submit(session, code, full_answers(q))
    released = ballots.release(session, open_round, "another-secret", today=TODAY, everything=True)
    assert (released.ballots, released.unreadable) == (0, 1) and _count(session, Ballot) == 1
    session.rollback()
    try:
        rounds.close(session, open_round, secret="another-secret", actor="test")
    except rounds.RoundError as exc:
        assert "SECRET_KEY" in str(exc)
    else:
        raise AssertionError("closing with a ballot that cannot be opened must stop")
    session.rollback()
    assert _count(session, Ballot) == 1 and open_round.closed_at is None


def test_two_releases_at_once_store_each_ballot_once(app, issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    for code in issue("CC-CT", "SNV", 5):
        _submit(session, code, full_answers(q))
    engine = session.get_bind()
    first, second = Session(engine), Session(engine)
    rnd_first, rnd_second = first.get(type(open_round), open_round.id), second.get(type(open_round), open_round.id)
    results = {}
    # the first release has claimed the ballots but not committed when the second one starts
    results["first"] = ballots.release(first, rnd_first, SECRET, today=TODAY, everything=True).ballots

    def other():
        results["second"] = ballots.release(second, rnd_second, SECRET, today=TODAY, everything=True).ballots
        second.commit()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(0.5)  # it waits for the first one's rows
    first.commit()
    thread.join(30)
    first.close(), second.close()
    assert results == {"first": 5, "second": 0}
    assert _count(session, Response) == 5 and _count(session, Ballot) == 0


def test_the_dashboard_counts_sealed_ballots(issue, session, questionnaire, open_round):
    from survey_service.services import progress

    q = questionnaire("CC-CT")
    for code in issue("CC-CT", "SNV", 2):
        _submit(session, code, full_answers(q))
    data = progress.round_progress(session, open_round)
    [snv] = [c for c in data.cells if c.form_code == "CC-CT" and c.agency_code == "SNV"]
    assert snv.figures.verified == 2 and snv.last_response_on == TODAY
    # a cell is full by its own ballots, not by another cell's
    snv_cell = session.get(QuotaCell, portal.open_code(session, issue("CC-CT", "SNV")[0], secret=SECRET,
                                                       today=TODAY).cell.id)
    assert portal.cell_is_full(session, snv_cell) is False
    snv_cell.target = 2
    [other] = issue("CC-CT", "STP")
    session.get(QuotaCell, portal.open_code(session, other, secret=SECRET, today=TODAY).cell.id).target = 2
    session.commit()
    assert portal.cell_is_full(session, snv_cell)
    portal.open_code(session, other, secret=SECRET, today=TODAY, start=True)  # not refused as "full"
    with pytest.raises(portal.Refusal, match="full"):
        portal.open_code(session, issue("CC-CT", "SNV")[0], secret=SECRET, today=TODAY, start=True)
    assert (TODAY, "online", 2) in progress.daily_counts(session, open_round)
    ballots.release(session, open_round, SECRET, today=TODAY, everything=True)
    session.commit()
    [snv] = [c for c in progress.round_progress(session, open_round).cells
             if c.form_code == "CC-CT" and c.agency_code == "SNV"]
    assert snv.figures.verified == 2


def test_pages_release_past_days_and_the_results_page_says_what_waits(staff_client, issue, session, questionnaire,
                                                                      open_round, monkeypatch):
    q = questionnaire("CC-CT")
    for code in issue("CC-CT", "SNV", 2):
        _submit(session, code, full_answers(q))
    client = staff_client("analyst")
    page = client.get(f"/staff/results/{open_round.code}/")
    assert page.status_code == 200
    assert "2 phiếu trực tuyến của hôm nay sẽ được đưa vào kết quả từ ngày mai" in page.get_data(as_text=True)
    assert _count(session, Ballot) == 2 and _count(session, Response) == 0
    # after midnight in Vietnam, the first page that reads responses releases them
    monkeypatch.setattr(rounds, "local_today", lambda: TODAY + timedelta(days=1))
    assert client.get(f"/staff/responses/{open_round.code}/").status_code == 200
    session.expire_all()
    assert _count(session, Ballot) == 0 and _count(session, Response) == 2
    assert "từ ngày mai" not in client.get(f"/staff/results/{open_round.code}/").get_data(as_text=True)


def test_the_rounds_page_closes_and_releases(staff_client, issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    [code] = issue("CC-CT", "SNV")
    _submit(session, code, full_answers(q))
    client = staff_client("supervisor")
    closed = client.post(f"/staff/admin/rounds/{open_round.code}/close", follow_redirects=True)
    assert closed.status_code == 200 and "1 phiếu trực tuyến đang niêm phong đã được đưa vào" in closed.get_data(as_text=True)
    session.expire_all()
    assert _count(session, Ballot) == 0 and _count(session, Response) == 1


def test_round_release_on_the_command_line(app, issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    early, late = issue("CC-CT", "SNV", 2)
    _submit(session, early, full_answers(q), today=TODAY - timedelta(days=2))
    _submit(session, late, full_answers(q))
    runner = app.test_cli_runner()
    out = runner.invoke(args=["round", "release", open_round.code])
    assert out.exit_code == 0 and "1 phiếu trực tuyến (1 phiếu trả lời)" in out.output and "1 phiếu của hôm nay" in out.output
    app.config["SECRET_KEY"] = "replaced"  # a ballot sealed under the old key is kept, and said so
    stuck = runner.invoke(args=["round", "close", open_round.code])
    assert stuck.exit_code == 1 and "SECRET_KEY" in stuck.output
    session.expire_all()
    assert _count(session, Ballot) == 1 and open_round.closed_at is None


def test_the_rounds_page_refuses_to_close_over_ballots_it_cannot_open(staff_client, session, open_round,
                                                                      monkeypatch):
    client = staff_client("supervisor")
    monkeypatch.setattr(ballots, "release", lambda *a, **kw: ballots.Release(unreadable=2))
    refused = client.post(f"/staff/admin/rounds/{open_round.code}/close")
    assert refused.status_code == 409 and "2 phiếu trực tuyến đã gửi không mở được" in refused.get_data(as_text=True)
    session.expire_all()
    assert open_round.closed_at is None

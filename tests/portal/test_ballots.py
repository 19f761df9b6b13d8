"""The sealed ballot box: what a submission stores, and how ballots become responses."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import Answer, Ballot, CodeStatus, InvitationCode, QuotaCell, Response, SpentCode
from survey_service.services import ballots, invitations, portal, rounds, sealing
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


def _texts(session, q) -> set[str]:
    return set(session.scalars(sa.select(Answer.value).where(Answer.item_code == q.text_items[0].code)))


def test_a_cell_is_released_in_batches_of_at_least_k_and_dated_by_the_release(issue, session, questionnaire,
                                                                              open_round):
    """k = the round's ``min_breakdown``: nothing while fewer than 2k wait, then all but k, on the release's
    day whatever day they were sent; a release with nothing due changes nothing."""
    q = questionnaire("CC-CT")
    k = open_round.settings["min_breakdown"]
    box = ballots.sealer(SECRET, open_round.code)
    codes = issue("CC-CT", "SNV", 2 * k)
    yesterday = TODAY - timedelta(days=1)
    for n, code in enumerate(codes[:-1]):
        _submit(session, code, full_answers(q, text=f"Phiếu {n}."), today=yesterday)
    released = ballots.release(session, open_round, box, today=TODAY)
    assert (released.ballots, released.waiting) == (0, 2 * k - 1) and _count(session, Response) == 0
    _submit(session, codes[-1], full_answers(q, text=f"Phiếu {2 * k - 1}."))  # the 2k-th releases all but k
    assert _count(session, Response) == k and _count(session, Ballot) == k
    assert set(session.scalars(sa.select(Response.submitted_on))) == {TODAY}
    assert ballots.release(session, open_round, box, today=TODAY).ballots == 0
    # at the close, every ballot left: again at least k
    assert rounds.close(session, open_round, secret=SECRET, actor="test").ballots == k
    session.commit()
    assert _texts(session, q) == {f"Phiếu {n}." for n in range(2 * k)} and _count(session, Ballot) == 0


def test_which_ballots_wait_is_drawn_at_random(issue, session, questionnaire, open_round, monkeypatch):
    """The k ballots kept back are neither the first nor the last ones sent: a released response could be
    any of those who were waiting (that either happens by chance has a probability of 1 in 329,004 for k = 5).
    The submissions' own releases are held back here, so that one release draws from all of them."""
    monkeypatch.setattr(ballots, "release_cell", lambda *a, **kw: ballots.Release())
    q = questionnaire("CC-CT")
    k = open_round.settings["min_breakdown"]
    n = 8 * k
    invitations.find_cell(session, open_round, "CC-CT", "SNV").target = n
    for i, code in enumerate(issue("CC-CT", "SNV", n)):
        _submit(session, code, full_answers(q, text=f"Phiếu {i}."))
    assert ballots.release(session, open_round, ballots.sealer(SECRET, open_round.code), today=TODAY).ballots == n - k
    kept = {f"Phiếu {i}." for i in range(n)} - _texts(session, q)
    assert len(kept) == k
    assert kept not in ({f"Phiếu {i}." for i in range(k)}, {f"Phiếu {i}." for i in range(n - k, n)})


def test_an_owner_sealed_round_opens_only_with_the_owners_key(app, issue, session, questionnaire, open_round,
                                                              tmp_path):
    q = questionnaire("CC-CT")
    cli = app.test_cli_runner()
    key_file, passphrase = tmp_path / "owner.key", "một mật khẩu dài đủ"
    env = {"SURVEY_BALLOT_KEY_PASSPHRASE": passphrase}
    made = cli.invoke(args=["round", "seal-key", open_round.code, "--new", str(key_file)], env=env)
    assert made.exit_code == 0 and key_file.is_file(), made.output
    session.expire_all()
    assert open_round.ballot_public_key and open_round.ballot_public_key in made.output
    for i, code in enumerate(issue("CC-CT", "SNV", 3)):
        _submit(session, code, full_answers(q, text=f"Chủ đợt {i}."))
    # neither the server's secret nor a page, nor the close, opens them
    sealed = session.scalars(sa.select(Ballot.sealed)).all()
    assert len(sealed) == 3 and not any(ballots.sealer(SECRET, open_round.code).open(b) for b in sealed)
    assert ballots.release(session, open_round, ballots.opener(open_round, SECRET), today=TODAY,
                           everything=True) == ballots.Release(waiting=3)
    closed = cli.invoke(args=["round", "close", open_round.code])
    assert closed.exit_code == 0 and "khóa của chủ đợt" in closed.output, closed.output
    assert _count(session, Ballot) == 3 and _count(session, Response) == 0
    # a wrong passphrase, or another key, is refused with the reason and changes nothing
    wrong = cli.invoke(args=["round", "release", open_round.code, "--key", str(key_file), "--passphrase", "sai"])
    assert wrong.exit_code == 1 and "sai mật khẩu" in wrong.output
    other = tmp_path / "other.key"
    other.write_bytes(sealing.OwnerKey.generate(open_round.code).to_file(passphrase))
    assert "không phải khóa của đợt" in cli.invoke(
        args=["round", "release", open_round.code, "--key", str(other)], env=env).output
    assert _count(session, Ballot) == 3
    # the owner's key releases them all (the round is closed)
    opened = cli.invoke(args=["round", "release", open_round.code, "--key", str(key_file)], env=env)
    assert opened.exit_code == 0 and "3 phiếu trực tuyến" in opened.output, opened.output
    session.expire_all()
    assert _texts(session, q) == {f"Chủ đợt {i}." for i in range(3)} and _count(session, Ballot) == 0


def test_the_owners_key_cannot_change_while_ballots_wait(app, issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    _submit(session, issue("CC-CT", "SNV")[0], full_answers(q))
    public = sealing.OwnerKey.generate(open_round.code).public_key
    refused = app.test_cli_runner().invoke(args=["round", "seal-key", open_round.code, "--public-key", public])
    assert refused.exit_code == 1 and "round release" in refused.output
    bad = app.test_cli_runner().invoke(args=["round", "seal-key", open_round.code, "--public-key", "abc"])
    assert bad.exit_code == 1 and "không hợp lệ" in bad.output
    session.expire_all()
    assert open_round.ballot_public_key is None


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
    assert _count(session, SpentCode) == 0


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
    released = ballots.release(session, open_round, ballots.sealer("another-secret", open_round.code), today=TODAY,
                               everything=True)
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
    results["first"] = ballots.release(first, rnd_first, ballots.sealer(SECRET, rnd_first.code), today=TODAY,
                                       everything=True).ballots

    def other():
        results["second"] = ballots.release(second, rnd_second, ballots.sealer(SECRET, rnd_second.code), today=TODAY,
                                            everything=True).ballots
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
    assert snv.figures.verified == 2 and snv.last_response_on is None  # (a ballot carries no day)
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
    assert progress.daily_counts(session, open_round) == []  # the curve counts responses on their release day
    ballots.release(session, open_round, ballots.sealer(SECRET, open_round.code), today=TODAY, everything=True)
    session.commit()
    [snv] = [c for c in progress.round_progress(session, open_round).cells
             if c.form_code == "CC-CT" and c.agency_code == "SNV"]
    assert snv.figures.verified == 2 and snv.last_response_on == TODAY
    assert (TODAY, "online", 2) in progress.daily_counts(session, open_round)


def test_a_submission_that_brings_its_cell_to_2k_releases_all_but_k_in_its_own_transaction(
        issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    k = open_round.settings["min_breakdown"]
    codes = issue("CC-CT", "SNV", 2 * k)
    [other_cell] = issue("CC-CT", "STP", 1)
    for code in codes[:-1]:
        _submit(session, code, full_answers(q))
    _submit(session, other_cell, full_answers(q))  # another cell's ballot stays where it is
    assert _count(session, Response) == 0 and _count(session, Ballot) == 2 * k
    access = portal.open_code(session, codes[-1], secret=SECRET, today=TODAY, start=True)
    assert portal.submit(session, access, {"SNV": full_answers(q)}, portal.new_submission_id(), today=TODAY)
    # before the commit, in the submission's transaction: all but k of the cell's 2k, each respondent once
    assert _count(session, Response) == k and _count(session, Ballot) == k + 1
    assert len(set(session.scalars(sa.select(Response.respondent_key)))) == k
    assert set(session.scalars(sa.select(Response.quota_cell_id))) == {access.cell.id}
    session.rollback()  # the submission undone undoes its release too
    assert _count(session, Response) == 0 and _count(session, Ballot) == 2 * k
    assert portal.submit(session, portal.open_code(session, codes[-1], secret=SECRET, today=TODAY, start=True),
                         {"SNV": full_answers(q)}, portal.new_submission_id(), today=TODAY)
    session.commit()
    assert _count(session, Response) == k and _count(session, Ballot) == k + 1


def test_an_owner_sealed_round_is_not_released_by_submissions(app, issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    k = open_round.settings["min_breakdown"]
    open_round.ballot_public_key = sealing.OwnerKey.generate(open_round.code).public_key
    session.commit()
    for code in issue("CC-CT", "SNV", 2 * k):
        _submit(session, code, full_answers(q))
    assert _count(session, Ballot) == 2 * k and _count(session, Response) == 0


def test_concurrent_submissions_release_each_ballot_once(issue, session, questionnaire, open_round):
    """2k - 1 wait; two more submissions of the cell at once: the first releases all but k of its 2k, the
    second waits for the cell's lock, then finds k + 1 waiting and releases nothing."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite has one writer at a time)")
    q = questionnaire("CC-CT")
    k = open_round.settings["min_breakdown"]
    invitations.find_cell(session, open_round, "CC-CT", "SNV").target = 4 * k
    session.commit()
    codes = issue("CC-CT", "SNV", 2 * k + 1)
    for code in codes[:-2]:
        _submit(session, code, full_answers(q))
    engine = session.get_bind()
    first, second = Session(engine), Session(engine)
    done = {}
    access = portal.open_code(first, codes[-2], secret=SECRET, today=TODAY, start=True)
    first.commit()
    later = portal.open_code(second, codes[-1], secret=SECRET, today=TODAY, start=True)
    second.commit()
    assert portal.submit(first, access, {"SNV": full_answers(q)}, portal.new_submission_id(), today=TODAY)

    def other():
        done["second"] = portal.submit(second, later, {"SNV": full_answers(q)}, portal.new_submission_id(),
                                       today=TODAY)
        second.commit()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(0.5)  # it waits for the cell's row
    first.commit()
    thread.join(30)
    first.close(), second.close()
    assert done == {"second": True}
    session.expire_all()
    assert _count(session, Response) == k and _count(session, Ballot) == k + 1
    assert len(set(session.scalars(sa.select(Response.respondent_key)))) == k


def test_pages_only_count_what_waits(staff_client, app, issue, session, questionnaire, open_round):
    """Reading a round's pages writes nothing: the results page says what waits, the submission that brings
    the cell to 2k releases, and a round over by date keeps the rest until "round release" or its close."""
    q = questionnaire("CC-CT")
    k = open_round.settings["min_breakdown"]
    codes = issue("CC-CT", "SNV", 2 * k + 1)
    for code in codes[:2 * k - 1]:
        _submit(session, code, full_answers(q))
    client = staff_client("analyst")
    page = client.get(f"/staff/results/{open_round.code}/")
    assert page.status_code == 200
    assert f"{2 * k - 1} phiếu trực tuyến đang chờ" in page.get_data(as_text=True)
    for url in (f"/staff/responses/{open_round.code}/", f"/staff/progress/{open_round.code}"):
        assert client.get(url).status_code == 200
    session.expire_all()
    assert _count(session, Ballot) == 2 * k - 1 and _count(session, Response) == 0
    for code in codes[2 * k - 1:]:
        _submit(session, code, full_answers(q))
    assert _count(session, Ballot) == k + 1 and _count(session, Response) == k
    # the round is over by date, not closed: the page says how what waits is released, and keeps it waiting
    open_round.opens_on, open_round.closes_on = TODAY - timedelta(days=20), TODAY - timedelta(days=1)
    session.commit()
    text = client.get(f"/staff/results/{open_round.code}/").get_data(as_text=True)
    assert f"{k + 1} phiếu trực tuyến đang chờ" in text and "round release" in text
    session.expire_all()
    assert _count(session, Ballot) == k + 1
    out = app.test_cli_runner().invoke(args=["round", "release", open_round.code])
    assert out.exit_code == 0 and f"{k + 1} phiếu trực tuyến" in out.output, out.output
    session.expire_all()
    assert _count(session, Ballot) == 0 and _count(session, Response) == 2 * k + 1
    assert "đang chờ" not in client.get(f"/staff/results/{open_round.code}/").get_data(as_text=True)


def test_the_rounds_page_closes_and_releases(staff_client, issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    [code] = issue("CC-CT", "SNV")
    _submit(session, code, full_answers(q))
    client = staff_client("supervisor")
    closed = client.post(f"/staff/admin/rounds/{open_round.code}/close", follow_redirects=True)
    assert closed.status_code == 200
    assert "1 phiếu trực tuyến đang niêm phong đã được đưa vào" in closed.get_data(as_text=True)
    session.expire_all()
    assert _count(session, Ballot) == 0 and _count(session, Response) == 1


def test_round_release_on_the_command_line(app, issue, session, questionnaire, open_round):
    q = questionnaire("CC-CT")
    k = open_round.settings["min_breakdown"]
    for code in issue("CC-CT", "SNV", 2 * k + 1):
        _submit(session, code, full_answers(q))
    runner = app.test_cli_runner()
    # the 2k-th submission released k; the command finds fewer than 2k waiting and releases none of them
    out = runner.invoke(args=["round", "release", open_round.code])
    assert out.exit_code == 0 and "0 phiếu trực tuyến (0 phiếu trả lời)" in out.output, out.output
    assert f"{k + 1} phiếu trực tuyến đang chờ" in out.output
    app.config["SECRET_KEY"] = "replaced"  # a ballot sealed under the old key is kept, and said so
    stuck = runner.invoke(args=["round", "close", open_round.code])
    assert stuck.exit_code == 1 and "SECRET_KEY" in stuck.output
    session.expire_all()
    assert _count(session, Ballot) == k + 1 and open_round.closed_at is None


def test_the_rounds_page_refuses_to_close_over_ballots_it_cannot_open(staff_client, session, open_round,
                                                                      monkeypatch):
    client = staff_client("supervisor")
    monkeypatch.setattr(ballots, "release", lambda *a, **kw: ballots.Release(unreadable=2))
    refused = client.post(f"/staff/admin/rounds/{open_round.code}/close")
    assert refused.status_code == 409 and "2 phiếu trực tuyến đã gửi không mở được" in refused.get_data(as_text=True)
    session.expire_all()
    assert open_round.closed_at is None

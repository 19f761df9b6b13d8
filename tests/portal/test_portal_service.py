"""The portal service: opening codes, drafts, checks, submission, states and anonymity."""
from __future__ import annotations

import base64
import math
from datetime import timedelta

import pytest
import sqlalchemy as sa

from survey_service.models import (
    Answer, AuditEvent, Ballot, CodeStatus, Division, Draft, InvitationCode, RateCounter, Response, SpentCode,
)
from survey_service.services import ballots, invitations, portal
from survey_service.web.respond import local_today
from tests.conftest import release_ballots
from tests.portal.conftest import full_answers, ldcp_cell

TODAY = local_today()


def count(session, model, *where):
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("bad", ["Cần\x00 sửa", "Cần \ud800 sửa"], ids=["nul", "lone-surrogate"])
def test_text_the_database_cannot_store_is_refused_before_it_is_sealed(issue, session, questionnaire, bad):
    [code] = issue("CC-CT", "SNV")
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    session.commit()
    q = questionnaire("CC-CT")
    text = q.text_items[0].code
    answers = {"SNV": {**full_answers(q), text: bad}}
    for step in ("save", "submit"):
        with pytest.raises(portal.AnswerErrors) as refused:
            if step == "save":
                portal.save_draft(session, access, answers, today=TODAY)
            else:
                portal.submit(session, access, answers, "b" * 32, today=TODAY)
        assert "không lưu được" in refused.value.errors[("SNV", text)], step
        session.rollback()
    assert count(session, Ballot) == 0 and session.scalar(sa.select(Draft.sealed)) is None
    assert session.scalar(sa.select(InvitationCode.status)) is CodeStatus.UNUSED


def test_codes_have_over_50_bits_and_no_look_alikes():
    assert len(invitations.ALPHABET) == 30
    assert not set("01OILU") & set(invitations.ALPHABET)
    assert invitations.CODE_LENGTH * math.log2(len(invitations.ALPHABET)) > 58
    code = invitations.generate_code()
    assert len(code) == 14 and code[4] == code[9] == "-"


@pytest.mark.parametrize("typed", ["k7qm-8xrt-4hwp", " K7QM 8XRT 4HWP ", "K7QM8XRT4HWP", "k7qm–8xrt_4hwp"])
def test_typed_codes_are_normalised(typed):
    assert invitations.normalise_code(typed) == "K7QM-8XRT-4HWP"


@pytest.mark.parametrize("typed", ["", "K7QM-8XRT-4HW", "K7QM-8XRT-4HWO", "K7QM-8XRT-4HW1", "K7QM-8XRT-4HWPX"])
def test_impossible_codes_are_not_codes(typed):
    assert invitations.normalise_code(typed) is None


def test_submit_stores_one_anonymous_response_and_spends_the_code(issue, session, questionnaire):
    [code] = issue("CC-CT", "SNV")
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    session.commit()
    assert access.draft is not None and [a.code for a in access.rated_agencies] == ["SNV"]
    answers = {"SNV": full_answers(questionnaire("CC-CT"), text="Hồ sơ 'trả chậm'; cần sửa \"quy trình\".")}
    answers["SNV"]["I02"] = "K"
    assert portal.submit(session, access, answers, "a" * 32, today=TODAY) is True
    session.commit()
    # Sealed in the ballot box until released: no response yet; the ballot shows none of the answers and no day
    assert count(session, Response) == count(session, Answer) == 0
    ballot = session.scalar(sa.select(Ballot))
    assert ballot.quota_cell_id == access.cell.id
    # (investigator: only a citizens' round's keyed paper sheet names one)
    assert set(Ballot.__table__.columns.keys()) == {"id", "quota_cell_id", "sealed", "investigator", "commune"}
    assert ballot.investigator is None
    assert "trả chậm".encode() not in base64.urlsafe_b64decode(ballot.sealed)
    opened = ballots.sealer("test-secret", access.round.code).open(ballot.sealed)
    assert opened["answers"] == [[access.cell.agency.id, answers["SNV"]]]
    assert ballots.sealer("test-secret", "another round").open(ballot.sealed) is None
    assert release_ballots(session) == 1 and count(session, Ballot) == 0

    response = session.scalar(sa.select(Response))
    assert response.agency.code == "SNV" and response.form_code == "CC-CT" and response.submitted_on == TODAY
    assert response.channel.value == "online" and response.quota_cell_id == access.cell.id
    assert {(a.agency_id, a.item_code, a.value) for a in response.answers} == {
        (response.agency_id, item, value) for item, value in answers["SNV"].items()}
    # Nothing in the response row refers to the code, the client or a time of day.
    columns = set(Response.__table__.columns.keys())
    assert not columns & {"code", "invitation_code_id", "ip", "address", "user_agent", "submitted_at"}
    assert code not in repr([getattr(response, c) for c in columns])
    invitation = session.scalar(sa.select(InvitationCode).where(InvitationCode.code == code))
    assert invitations.statuses(session, "test-secret", [invitation]) == {invitation.id: CodeStatus.USED}
    assert count(session, Draft) == 0 and count(session, SpentCode) == 1
    # the code's row is as issued: its spending is stored under a mark that is not the code
    assert invitation.status is CodeStatus.UNUSED
    assert code not in repr(session.execute(sa.select(SpentCode.__table__)).all())
    # a timed record of the submission would order the responses: there is none
    assert count(session, AuditEvent, AuditEvent.actor == "respondent") == 0


def test_a_retried_submission_is_recognised_and_a_second_one_refused(issue, session, questionnaire):
    [code] = issue()
    answers = {"SNV": full_answers(questionnaire())}
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    portal.submit(session, access, answers, "b" * 32, today=TODAY)
    session.commit()

    retry = portal.open_code(session, code, secret="test-secret", today=TODAY, submission_id="b" * 32)
    assert retry.submitted
    with pytest.raises(portal.Refusal) as refused:
        portal.open_code(session, code, secret="test-secret", today=TODAY, submission_id="c" * 32)
    assert refused.value.reason == "submitted"
    assert count(session, Ballot) == 1


def test_racing_submit_sees_the_code_already_spent(issue, session, questionnaire):
    """Two requests opened the code before either submitted: the second must not store anything."""
    [code] = issue()
    answers = {"SNV": full_answers(questionnaire())}
    first = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    second = portal.open_code(session, code, secret="test-secret", today=TODAY)
    assert portal.submit(session, first, answers, "d" * 32, today=TODAY) is True
    assert portal.submit(session, second, answers, "d" * 32, today=TODAY) is False
    with pytest.raises(portal.Refusal):
        portal.submit(session, second, answers, "e" * 32, today=TODAY)
    session.commit()
    assert count(session, Ballot) == 1


def test_drafts_keep_partial_answers(issue, session):
    [code] = issue()
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    portal.save_draft(session, access, {"SNV": {"I01": "4", "I02": "", "I03": "K"}}, today=TODAY)
    session.commit()
    again = portal.open_code(session, code, secret="test-secret", today=TODAY)
    assert again.saved_answers() == {"SNV": {"I01": "4", "I03": "K"}}
    with pytest.raises(portal.AnswerErrors) as missing:
        portal.submit(session, again, again.saved_answers(), "f" * 32, today=TODAY)
    assert ("SNV", "I02") in missing.value.errors and ("SNV", "I01") not in missing.value.errors


@pytest.mark.parametrize("answers, key, words", [
    ({"SNV": {"I01": "9"}}, ("SNV", "I01"), "không hợp lệ"),
    ({"SNV": {"Z99": "3"}}, ("SNV", "Z99"), "không có trong phiếu"),
    ({"STP": {"I01": "3"}}, ("STP", None), "không thuộc phạm vi"),
])
def test_bad_answers_are_refused_and_nothing_is_saved(issue, session, answers, key, words):
    [code] = issue()
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    session.commit()
    with pytest.raises(portal.AnswerErrors) as bad:
        portal.save_draft(session, access, answers, today=TODAY)
    session.rollback()
    assert words in bad.value.errors[key]
    assert session.scalar(sa.select(Draft.answers)) == {}


def test_text_over_its_limit_is_refused(issue, session, questionnaire):
    [code] = issue()
    q = questionnaire()
    [text_item] = q.text_items
    access = portal.open_code(session, code, secret="test-secret", today=TODAY)
    answers = full_answers(q, text="x" * (text_item.max_length + 1))
    with pytest.raises(portal.AnswerErrors) as bad:
        portal.submit(session, access, {"SNV": answers}, "1" * 32, today=TODAY)
    assert "vượt quá giới hạn" in bad.value.errors[("SNV", text_item.code)]
    session.rollback()
    assert count(session, Response) == 0 and count(session, SpentCode) == 0


def test_unknown_and_revoked_codes_are_refused(issue, session):
    [code] = issue()
    batch = session.scalar(sa.select(InvitationCode).where(InvitationCode.code == code)).batch
    assert invitations.revoke_codes(session, batch, secret="test-secret") == 1
    session.commit()
    for text, reason in [("ABCD-EFGH-JKMN", "unknown"), ("not a code", "unknown"), (code, "revoked")]:
        with pytest.raises(portal.Refusal) as refused:
            portal.open_code(session, text, secret="test-secret", today=TODAY)
        assert refused.value.reason == reason


@pytest.mark.parametrize("shift, reason", [(-11, "not_open"), (31, "closed")])
def test_round_dates_are_enforced(issue, session, shift, reason):
    [code] = issue()
    with pytest.raises(portal.Refusal) as refused:
        portal.open_code(session, code, secret="test-secret", today=TODAY + timedelta(days=shift))
    assert refused.value.reason == reason


def test_a_round_closed_early_refuses_codes(issue, session, open_round):
    [code] = issue()
    open_round.closed_at = open_round.loaded_at
    session.commit()
    with pytest.raises(portal.Refusal) as refused:
        portal.open_code(session, code, secret="test-secret", today=TODAY)
    assert refused.value.reason == "closed"


def test_a_full_cell_refuses_new_starts_but_lets_started_drafts_finish(issue, session, questionnaire):
    started, fresh, last = issue("CC-CT", "SNV", 3)
    cell = session.scalar(sa.select(InvitationCode).where(InvitationCode.code == started)).quota_cell
    cell.target = 1
    draft_access = portal.open_code(session, started, secret="test-secret", today=TODAY, start=True)
    session.commit()
    answers = {"SNV": full_answers(questionnaire())}
    portal.submit(session, portal.open_code(session, last, secret="test-secret", today=TODAY), answers, "2" * 32,
                  today=TODAY)
    session.commit()
    assert portal.cell_is_full(session, cell)
    with pytest.raises(portal.Refusal) as refused:
        portal.open_code(session, fresh, secret="test-secret", today=TODAY, start=True)
    assert refused.value.reason == "full"
    draft_access = portal.open_code(session, started, secret="test-secret", today=TODAY)
    assert portal.submit(session, draft_access, answers, "3" * 32, today=TODAY)
    session.commit()
    assert release_ballots(session) == 2
    assert count(session, Response, Response.quota_cell_id == cell.id) == 2


def test_a_soft_closed_cell_counts_as_full(issue, session):
    [code] = issue()
    cell = session.scalar(sa.select(InvitationCode).where(InvitationCode.code == code)).quota_cell
    cell.soft_closed = True
    session.commit()
    with pytest.raises(portal.Refusal) as refused:
        portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    assert refused.value.reason == "full"


def test_ldcp_rates_each_supervising_department_under_one_respondent_key(issue, session, open_round, questionnaire):
    [code] = issue("LĐ-CP", "TAMKY")
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    assert access.needs_division and access.rated_agencies == []
    portal.choose_division(session, access, "KTHT", today=TODAY)
    session.commit()
    departments = [a.code for a in access.rated_agencies]
    assert departments == [a.code for a in session.scalar(
        sa.select(Division).where(Division.code == "KTHT")).supervised_by] and len(departments) == 4
    q = questionnaire("LĐ-CP")
    answers = {d: full_answers(q, value="4") for d in departments}
    portal.submit(session, portal.open_code(session, code, secret="test-secret", today=TODAY), answers, "4" * 32,
                  today=TODAY)
    session.commit()
    release_ballots(session)
    responses = session.scalars(sa.select(Response)).all()
    assert sorted(r.agency.code for r in responses) == sorted(departments)
    assert len({r.respondent_key for r in responses}) == 1 and len({r.uid for r in responses}) == 4
    cell = ldcp_cell(session, open_round, "TAMKY")
    assert {r.quota_cell_id for r in responses} == {cell.id}
    assert {r.division_id for r in responses} == {access.division.id}
    assert count(session, Answer, Answer.agency_id == responses[0].agency_id) == len(q.items)


def test_ldcp_refuses_departments_outside_the_division(issue, session, questionnaire):
    [code] = issue("LĐ-CP", "TAMKY")
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    portal.choose_division(session, access, "TP", today=TODAY)
    q = questionnaire("LĐ-CP")
    with pytest.raises(portal.AnswerErrors) as bad:
        portal.submit(session, access, {"STP": full_answers(q), "SYT": full_answers(q)}, "5" * 32, today=TODAY)
    assert "không phụ trách phòng đã chọn" in bad.value.errors[("SYT", None)]
    with pytest.raises(portal.Refusal) as refused:
        portal.choose_division(session, access, "NOPE", today=TODAY)
    assert refused.value.reason == "division"


def test_ldcp_cannot_submit_before_choosing_a_division(issue, session):
    [code] = issue("LĐ-CP", "TAMKY")
    access = portal.open_code(session, code, secret="test-secret", today=TODAY, start=True)
    with pytest.raises(portal.AnswerErrors) as bad:
        portal.submit(session, access, {}, "6" * 32, today=TODAY)
    assert (None, "division") in bad.value.errors


def test_failed_lookups_are_rate_limited_per_client(issue, session):
    [code] = issue()
    guard = portal.Guard("code:test-client", limit=3, window_seconds=600)
    other = portal.Guard("code:other-client", limit=3, window_seconds=600)
    for _ in range(5):  # successes do not use up the limit, nor write the counter
        portal.open_code(session, code, secret="test-secret", today=TODAY, guard=guard)
    assert count(session, RateCounter) == 0
    for _ in range(3):
        with pytest.raises(portal.Refusal, match="unknown"):
            portal.open_code(session, "ABCD-EFGH-JKMN", secret="test-secret", today=TODAY, guard=guard)
    for text in ("ABCD-EFGH-JKMN", code):  # now even a right code waits for the window to pass
        with pytest.raises(portal.Refusal, match="rate_limited"):
            portal.open_code(session, text, secret="test-secret", today=TODAY, guard=guard)
    portal.open_code(session, code, secret="test-secret", today=TODAY, guard=other)
    session.commit()
    # one bounded counter per client and window (the refused unknown code counted too), no audit rows
    assert session.scalars(sa.select(RateCounter.count)).all() == [4]
    assert count(session, AuditEvent, AuditEvent.action.startswith("code.lookup")) == 0

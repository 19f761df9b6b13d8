"""The public portal over HTTP: pages, status codes, the complete flow with CSRF, tampered POSTs."""
from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from survey_service.models import AuditEvent, Ballot, CodeStatus, Draft, InvitationCode, RateCounter, Response
from survey_service.services import invitations
from survey_service.web.respond import local_today
from tests.conftest import csrf_token_from, release_ballots
from tests.portal.conftest import full_answers


def count(session, model, *where):
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def form_fields(html: str) -> dict:
    """The hidden fields of the questionnaire form."""
    return {
        "csrf_token": csrf_token_from(html),
        "submission_id": re.search(r'name="submission_id" type="hidden" value="([0-9a-f]+)"', html).group(1),
        "form_tag": re.search(r'name="form_tag" type="hidden" value="([0-9a-f]+)"', html).group(1),
    }


def open_link(client, code):
    """Follow an invitation link: it is exchanged for a session and the browser is sent to the form."""
    link = client.get(f"/c/{code}")
    assert link.status_code == 303 and link.headers["Location"].endswith("/phieu")
    return client.get("/phieu")


def open_form(client, code) -> dict:
    page = open_link(client, code)
    assert page.status_code == 200, page.get_data(as_text=True)
    return form_fields(page.get_data(as_text=True))


def test_home_page_explains_the_survey_and_takes_a_code(client, open_round):
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for words in ["Sở Nội vụ", "Cam kết ẩn danh", open_round.name, open_round.closes_on.strftime("%d/%m/%Y"),
                  'label for="code"', 'lang="vi"']:
        assert words in html


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_complete_response_over_http_with_csrf(client, issue, session, questionnaire):
    [code] = issue("CC-CT", "SNV")
    home = client.get("/")
    typed = client.post("/", data={"csrf_token": csrf_token_from(home.get_data(as_text=True)),
                                   "code": code.lower().replace("-", " ")})
    assert typed.status_code == 303 and typed.headers["Location"].endswith("/phieu")
    page = client.get("/phieu")
    html = page.get_data(as_text=True)
    q = questionnaire("CC-CT")
    assert html.count("<fieldset") == len(q.items) and html.count("<legend>") == len(q.items)
    assert 'for="I01-0"' in html and "Không biết / không đánh giá" in html
    data = {**form_fields(html), **full_answers(q), "action": "submit"}
    done = client.post("/phieu", data=data)
    assert done.status_code == 200 and "Cảm ơn" in done.get_data(as_text=True)
    assert count(session, Ballot) == 1

    retry = client.post("/phieu", data=data)
    assert retry.status_code == 200 and "Cảm ơn" in retry.get_data(as_text=True)
    second = client.post("/phieu", data={**data, "submission_id": "f" * 32})
    assert second.status_code == 409 and "Phiếu đã được gửi" in second.get_data(as_text=True)
    reopened = open_link(client, code)
    assert reopened.status_code == 409
    assert count(session, Ballot) == 1


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_post_without_csrf_token_is_refused(client, issue, questionnaire, session):
    [code] = issue()
    fields = open_form(client, code)
    answer = client.post("/phieu", data={"submission_id": fields["submission_id"], "action": "submit",
                                          "form_tag": fields["form_tag"], **full_answers(questionnaire())})
    assert answer.status_code == 400 and "CSRF" in answer.get_data(as_text=True)
    assert count(session, Ballot) == 0


def test_save_and_resume_from_another_client(app, client, issue, session):
    [code] = issue()
    fields = open_form(client, code)
    saved = client.post("/phieu", data={**fields, "I01": "4", "I02": "K", "action": "save"})
    assert saved.status_code == 303
    other = app.test_client()
    html = open_link(other, code).get_data(as_text=True)
    assert re.search(r'<input type="radio" id="I01-0" name="I01" value="4" checked>', html)
    assert re.search(r'<input type="radio" id="I02-4" name="I02" value="K" checked>', html)
    assert not re.search(r'name="I03" value="[^"]+" checked', html)
    sealed = session.scalar(sa.select(Draft.sealed))
    # (the answers' JSON is not in the sealed bytes; "I01" alone turns up in random base64 now and then)
    assert sealed and b'"I01":"4"' not in base64.urlsafe_b64decode(sealed)
    assert session.scalar(sa.select(Draft.answers)) == {}


@pytest.mark.parametrize("change, field, words", [
    ({"I05": "7"}, "I05", "Lựa chọn không hợp lệ"),
    ({"I05": ""}, "I05", "Vui lòng chọn một mức đánh giá"),
    ({"T01": "x" * 2001}, "T01", "vượt quá giới hạn"),
])
def test_tampered_answers_get_400_next_to_the_field_and_store_nothing(client, issue, session, questionnaire,
                                                                       change, field, words):
    [code] = issue()
    q = questionnaire()
    text_code = q.text_items[0].code
    change = {text_code if k == "T01" else k: v for k, v in change.items()}
    field = text_code if field == "T01" else field
    data = {**open_form(client, code), **full_answers(q), **change, "action": "submit"}
    answer = client.post("/phieu", data=data)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    block = html[html.index(f'id="q-{field}"'):]
    block = block[:block.index("</fieldset>")]
    assert words in block and 'class="error"' in block and "autofocus" in block
    assert count(session, Ballot) == 0
    assert session.scalar(sa.select(InvitationCode.status)) is CodeStatus.UNUSED


def test_unknown_item_and_other_agency_are_refused(client, issue, session, questionnaire):
    [code] = issue()
    data = {**open_form(client, code), **full_answers(questionnaire()), "action": "submit", "Z99": "3"}
    answer = client.post("/phieu", data=data)
    assert answer.status_code == 400 and "Câu hỏi &#39;Z99&#39; không có trong phiếu" in answer.get_data(as_text=True)
    draft = client.post("/phieu", data={**data, "Z99": "", "action": "save"})
    assert draft.status_code == 400
    assert count(session, Ballot) == 0 and session.scalar(sa.select(Draft.sealed)) is None


def test_ldcp_division_then_one_block_per_department(client, issue, session, questionnaire):
    [code] = issue("LĐ-CP", "TAMKY")
    first = open_link(client, code)
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and "Phòng chuyên môn của Anh/Chị" in html and 'value="TCKH"' in html
    tag = re.search(r'name="form_tag" type="hidden" value="([0-9a-f]+)"', html).group(1)
    bad = client.post("/phieu/phong", data={"division": "XYZ", "form_tag": tag})
    assert bad.status_code == 400 and "không có trong danh sách" in bad.get_data(as_text=True)
    chosen = client.post("/phieu/phong", data={"division": "TCKH", "form_tag": tag})
    assert chosen.status_code == 303
    html = client.get("/phieu").get_data(as_text=True)
    assert "Đánh giá: Sở Tài chính" in html and "Đánh giá: Sở Kế hoạch và Đầu tư" in html
    q = questionnaire("LĐ-CP")
    answers = {f"{d}-{k}": v for d in ("STC", "SKHDT") for k, v in full_answers(q).items()}
    fields = form_fields(html)
    stranger = client.post("/phieu", data={**fields, **answers, "action": "submit",
                                               **{f"SYT-{k}": v for k, v in full_answers(q).items()}})
    assert stranger.status_code == 400 and "không phụ trách phòng đã chọn" in stranger.get_data(as_text=True)
    assert count(session, Ballot) == 0
    done = client.post("/phieu", data={**fields, **answers, "action": "submit"})
    assert done.status_code == 200 and count(session, Ballot) == 1
    release_ballots(session)
    assert sorted(r.agency.code for r in session.scalars(sa.select(Response))) == ["SKHDT", "STC"]
    assert len(set(session.scalars(sa.select(Response.respondent_key)))) == 1


def test_wrong_and_revoked_codes_get_clear_pages(client, issue, session):
    [code] = issue()
    wrong = open_link(client, "ABCD-EFGH-JKMN")
    assert wrong.status_code == 404 and "Mã khảo sát không đúng" in wrong.get_data(as_text=True)
    garbage = open_link(client, "%3Cscript%3E")
    assert garbage.status_code == 404
    typed = client.post("/", data={"code": "abcd efgh jkmn"})
    html = typed.get_data(as_text=True)
    assert typed.status_code == 404 and 'id="code-err"' in html and 'aria-invalid="true"' in html
    invitations.revoke_codes(session, session.scalar(sa.select(InvitationCode)).batch, secret="test-secret")
    session.commit()
    revoked = open_link(client, code)
    assert revoked.status_code == 410 and "thu hồi" in revoked.get_data(as_text=True)


def test_a_link_typed_in_lowercase_without_dashes_opens_the_form(client, issue):
    [code] = issue()
    page = open_link(client, code.lower().replace("-", ""))
    assert page.status_code == 200 and code in page.get_data(as_text=True)


@pytest.mark.parametrize("opens, closes, title", [(5, 30, "chưa bắt đầu"), (-30, -5, "đã kết thúc")])
def test_round_state_pages(client, issue, session, open_round, opens, closes, title):
    [code] = issue()
    today = local_today()
    open_round.opens_on, open_round.closes_on = today + timedelta(days=opens), today + timedelta(days=closes)
    session.commit()
    page = open_link(client, code)
    assert page.status_code == 403 and title in page.get_data(as_text=True)


def test_full_cell_page_but_started_respondent_finishes(app, client, issue, session, questionnaire):
    started, fresh = issue("CC-CT", "SNV", 2)
    fields = open_form(client, started)
    session.scalar(sa.select(InvitationCode)).quota_cell.soft_closed = True
    session.commit()
    page = open_link(app.test_client(), fresh)
    assert page.status_code == 409 and "Đã đủ số phiếu" in page.get_data(as_text=True)
    done = client.post("/phieu", data={**fields, **full_answers(questionnaire()), "action": "submit"})
    assert done.status_code == 200 and count(session, Ballot) == 1


@pytest.mark.app_config(CODE_LOOKUP_LIMIT=5)
def test_a_burst_of_wrong_codes_is_rate_limited_and_counted(app, client, issue, session):
    [code] = issue()
    statuses = [open_link(client, f"ABCD-EFGH-JK{c}{d}").status_code for c in "MN" for d in "PQRS"]
    assert statuses[:5] == [404] * 5 and set(statuses[5:]) == {429}
    blocked = open_link(client, code)
    assert blocked.status_code == 429 and "Quá nhiều lần thử" in blocked.get_data(as_text=True)
    elsewhere = app.test_client()
    elsewhere.get(f"/c/{code}", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert elsewhere.get("/phieu", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert count(session, AuditEvent, AuditEvent.action.startswith("code.lookup")) == 0
    assert session.scalars(sa.select(RateCounter.count)).all() == [8]  # one row, refusals included
    keys = session.scalars(sa.select(RateCounter.key)).all()
    assert keys and not any("127.0.0.1" in k for k in keys)

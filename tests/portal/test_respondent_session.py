"""The respondent session: the code is exchanged for it, never readable in the cookie, never in the URL
that carries answers; a page of one code cannot post under another."""
from __future__ import annotations

import base64
import json
import re
import unicodedata
import zlib

import pytest
import sqlalchemy as sa

from survey_service.models import Ballot, Draft
from tests.conftest import release_ballots
from tests.portal.conftest import full_answers
from tests.portal.test_respond_views import count, form_fields, open_form, open_link


def _session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _flask_session_payload(value: str) -> str:
    """What anyone holding the cookie reads from it (Flask signs its session, it does not encrypt it)."""
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode()


def test_the_cookie_does_not_show_the_code(client, issue):
    [code] = issue()
    open_form(client, code)
    payload = _flask_session_payload(_session_cookie(client))
    assert json.loads(payload)  # readable JSON ...
    for form in (code, code.replace("-", ""), code.lower()):
        assert form not in payload  # ... without the code in any spelling


def test_answers_are_posted_to_an_address_without_the_code(client, issue):
    [code] = issue()
    page = open_link(client, code)
    html = page.get_data(as_text=True)
    assert page.request.path == "/phieu" and 'action="/phieu"' in html
    assert code not in html.split('class="questionnaire"', 1)[0].split("<form", 1)[-1]


def test_a_page_of_one_code_cannot_post_under_another(client, issue, session, questionnaire):
    first, second = issue("CC-CT", "SNV", 2)
    fields = open_form(client, first)
    open_form(client, second)  # the same browser opens another invitation meanwhile
    posted = client.post("/phieu", data={**fields, **full_answers(questionnaire()), "action": "submit"})
    assert posted.status_code == 409 and "thuộc một mã khảo sát khác" in posted.get_data(as_text=True)
    assert count(session, Ballot) == 0


def test_a_post_without_a_session_is_refused_and_stores_nothing(app, client, issue, session, questionnaire):
    [code] = issue()
    fields = open_form(client, code)
    fresh = app.test_client()
    posted = fresh.post("/phieu", data={**fields, **full_answers(questionnaire()), "action": "submit"})
    assert posted.status_code == 409 and "Phiên trả lời đã kết thúc" in posted.get_data(as_text=True)
    assert count(session, Ballot) == 0
    assert fresh.get("/phieu").status_code == 303  # nothing to show: back to the home page


def test_the_draft_is_sealed_and_opens_on_another_device(app, client, issue, session, questionnaire):
    [code] = issue()
    fields = open_form(client, code)
    marker = "Ghi chú chỉ có trong bản nháp 7Q"
    text_item = questionnaire().text_items[0].code
    assert client.post("/phieu", data={**fields, text_item: marker, "action": "save"}).status_code == 303
    sealed = session.scalar(sa.select(Draft.sealed))
    assert marker.encode() not in base64.urlsafe_b64decode(sealed)
    other = app.test_client()
    assert marker in open_link(other, code).get_data(as_text=True)


def test_portal_pages_are_not_cached_and_send_no_referrer(client, issue):
    [code] = issue()
    page = open_link(client, code)
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"


def test_free_text_is_stored_nfc_and_counted_in_nfc_characters(client, issue, session, questionnaire):
    [code] = issue()
    q = questionnaire()
    text = q.text_items[0]
    decomposed = unicodedata.normalize("NFD", "Thủ tục ") * (text.max_length // 8)  # NFC: exactly the limit
    assert len(decomposed) > text.max_length >= len(unicodedata.normalize("NFC", decomposed))
    data = {**open_form(client, code), **full_answers(q), text.code: decomposed, "action": "submit"}
    done = client.post("/phieu", data=data)
    assert done.status_code == 200, done.get_data(as_text=True)
    release_ballots(session)
    stored = session.execute(sa.text("SELECT value FROM answer WHERE item_code = :c"), {"c": text.code}).scalar()
    assert stored == unicodedata.normalize("NFC", decomposed).strip()


def _draft_answers(app, session, code) -> dict:
    from survey_service.services import portal

    sealed = session.scalar(sa.select(Draft.sealed))
    return portal.draft_sealer(app.config["SECRET_KEY"], code).open(sealed)


@pytest.mark.parametrize("tag", ["é" * 32, "Đ", "ａ" * 32, "0" * 31 + "\u0660", ""],
                         ids=["accented", "one-letter", "fullwidth", "arabic-digit", "empty"])
def test_a_form_tag_that_is_not_a_tag_is_a_400_and_loses_nothing(app, client, issue, session, questionnaire,
                                                                 tag):
    [code] = issue()
    q = questionnaire()
    text = q.text_items[0].code
    fields = open_form(client, code)
    saved = client.post("/phieu", data={**fields, "I01": "4", text: "Đã lưu từ trước", "action": "save"})
    assert saved.status_code == 303
    typed = {**full_answers(q, "2", "Câu trả lời vừa gõ"), "action": "submit"}
    for action in ("save", "submit"):
        posted = client.post("/phieu", data={**fields, **typed, "form_tag": tag, "action": action})
        html = posted.get_data(as_text=True)
        assert posted.status_code == 400, (action, html)
        assert "Trang trả lời gửi lên không hợp lệ" in html and "Câu trả lời vừa gõ" in html  # shown again
        assert count(session, Ballot) == 0
        assert _draft_answers(app, session, code) == {"SNV": {"I01": "4", text: "Đã lưu từ trước"}}
    # the page shown again carries a right tag: sending it again is accepted
    again = form_fields(html)
    assert again["form_tag"] == fields["form_tag"]
    done = client.post("/phieu", data={**again, **typed})
    assert done.status_code == 200 and "Cảm ơn" in done.get_data(as_text=True)
    assert count(session, Ballot) == 1


def test_a_division_choice_with_a_non_ascii_form_tag_is_a_400(client, issue, session):
    [code] = issue("LĐ-CP", "TAMKY")
    html = open_link(client, code).get_data(as_text=True)
    chosen = client.post("/phieu/phong", data={"division": "TCKH", "form_tag": "ฉ" * 32})
    assert chosen.status_code == 400 and "Trang trả lời gửi lên không hợp lệ" in chosen.get_data(as_text=True)
    assert session.scalar(sa.select(Draft.division_id)) is None
    tag = re.search(r'name="form_tag" type="hidden" value="([0-9a-f]+)"', html).group(1)
    assert client.post("/phieu/phong", data={"division": "TCKH", "form_tag": tag}).status_code == 303

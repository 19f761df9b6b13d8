"""The server's side of answering offline: the same submission stored once, other answers refused (422), a
fresh CSRF token, the service worker's headers, the code forgotten by the thank-you page's session."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from survey_service.models import Ballot, SpentCode
from tests.conftest import csrf_token_from
from tests.portal.conftest import full_answers

pytestmark = pytest.mark.app_config(WTF_CSRF_ENABLED=True)


@pytest.fixture
def offline_round(open_round, session):
    open_round.settings = {**open_round.settings, "offline_portal": True}
    session.commit()
    return open_round


def _form(client, code):
    page = client.get(f"/c/{code}", follow_redirects=True).get_data(as_text=True)
    fields = dict(re.findall(r'name="(form_tag|submission_id|answers_key)"[^>]*value="([^"]*)"', page))
    return page, {**fields, "csrf_token": csrf_token_from(page), "action": "submit"}


def test_same_submission_stores_once_other_answers_are_refused(client, issue, questionnaire, session, offline_round):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    page, post = _form(client, code)
    assert "data-offline" in page and "gửi trong vòng 7 ngày" in page
    post.update(full_answers(q))
    assert client.post("/phieu", data=post).status_code == 200
    digest = session.scalar(sa.select(SpentCode.answers_digest))
    assert digest and post["answers_key"] not in digest  # keyed by the page's key, which is not stored
    # the thank-you page ended the code's session: a resend opens it again, then stores nothing more
    assert client.post("/phieu", data=post).headers["X-Portal-State"] == "no_session"
    client.get(f"/c/{code}")
    post["csrf_token"] = client.get("/phieu/token").get_json()["csrf_token"]
    again = client.post("/phieu", data=post)
    assert again.status_code == 200 and "Cảm ơn" in again.get_data(as_text=True)
    client.get(f"/c/{code}")
    response = client.post("/phieu", data={**post, q.scale_items[0].code: "4"})
    assert response.status_code == 422 and response.headers["X-Portal-State"] == "different"
    assert "vẫn được giữ trên máy này" in response.get_data(as_text=True)
    assert session.scalar(sa.select(sa.func.count()).select_from(Ballot)) == 1


def test_token_service_worker_and_a_round_without_offline(client, issue, open_round):
    token = client.get("/phieu/token")
    assert token.status_code == 200 and token.headers["Cache-Control"] == "no-store" and token.get_json()["csrf_token"]
    worker = client.get("/sw.js")
    assert worker.status_code == 200 and worker.headers["Service-Worker-Allowed"] == "/"
    assert worker.headers["Cache-Control"] == "no-store"
    assert "request.method !== \"GET\"" in worker.get_data(as_text=True)
    [code] = issue("CC-CT", "SNV")
    page, _ = _form(client, code)
    assert "data-offline" not in page and "offline-note" not in page

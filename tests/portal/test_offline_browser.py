"""Answering offline in Debian's Chromium: the network cut and restored (Playwright's set_offline), two tabs,
a browser restart, a round closed while answers wait, a send refused while the service is down and sent again
with *Gửi lại*, a change made offline reaching the server's draft, a code revoked while answers wait, and the
respondent's keyboard flow with and without JavaScript."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from survey_service.models import Ballot, Draft, Response
from tests.conftest import BROWSER_ARGS, CHROMIUM
from tests.portal.test_browser import respondent_flow
from tests.portal.conftest import full_answers, until

# with CSRF checked, as in production: a resend after a restart needs its fresh token
pytestmark = [pytest.mark.browser, pytest.mark.app_config(WTF_CSRF_ENABLED=True)]


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: what these tests add is the browser's part; the server's (idempotent submission, the
    refused resend, the token) runs on both databases in test_offline_views.py."""
    yield f"sqlite:///{tmp_path / 'test.sqlite'}"

OUTBOX = """() => new Promise((resolve) => { const r = indexedDB.open('phieu-offline', 1);
  r.onupgradeneeded = () => { r.result.createObjectStore('drafts', {keyPath: 'tag'});
                              r.result.createObjectStore('outbox', {keyPath: 'sid'}); };
  r.onsuccess = () => { const tx = r.result.transaction(['drafts', 'outbox']);
    const a = tx.objectStore('outbox').count(), d = tx.objectStore('drafts').count();
    tx.oncomplete = () => { r.result.close(); resolve([a.result, d.result]); }; }; })"""
THANKED = "() => !!document.querySelector('h1') && document.querySelector('h1').textContent.includes('Cảm ơn')"
CACHED_PAGE = "() => caches.open('phieu-v1').then(c => c.match('/phieu')).then(r => !!r)"


@pytest.fixture
def offline_round(open_round, session):
    open_round.settings = {**open_round.settings, "offline_portal": True}
    session.commit()
    return open_round


@pytest.fixture
def requests_seen(app):
    """Paths of the requests the server got, in order."""
    seen = []
    inner = app.wsgi_app

    def record(environ, start_response):
        seen.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    app.wsgi_app = record
    yield seen
    app.wsgi_app = inner


def stored(session) -> int:
    session.expire_all()
    return (session.scalar(sa.select(sa.func.count()).select_from(Ballot))
            + session.scalar(sa.select(sa.func.count(sa.distinct(Response.respondent_key)))))


def ready(page, requests_seen) -> None:
    """The service worker runs, the form page and its static files are cached, and the server has seen the
    last request of the page's loading (so that what comes after is the test's)."""
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    until(page, CACHED_PAGE)
    until(page, "() => caches.open('phieu-v1').then(c => c.match('/static/js/offline.js')).then(r => !!r)")
    count = -1
    while count != len(requests_seen):
        count = len(requests_seen)
        page.wait_for_timeout(300)


def open_with_clock_stopped(browser, live_server, code: str, requests_seen):
    """A new browser opening ``code``'s form, ready, with the page's clock standing still: no timed retry
    can send, so what is sent is what the test does."""
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    page.clock.install()
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    page.goto(f"{live_server}/c/{code}")
    ready(page, requests_seen)
    return context, page


def answer(page, q, value: str = "3") -> None:
    for item, given in full_answers(q, value).items():
        if q.item(item).kind == "scale":
            page.check(f"input[name='{item}'][value='{given}']")
        else:
            page.fill(f"textarea[name='{item}']", given)


def queue_offline(page, context, q, requests_seen) -> None:
    context.set_offline(True)
    before = len(requests_seen)
    answer(page, q)
    page.click("button[value='submit']")
    until(page, "() => document.getElementById('offline-status').textContent.includes('Chưa có kết nối')")
    assert page.evaluate(OUTBOX)[0] == 1
    assert page.is_visible("#offline-resend")
    page.reload()  # from the service worker's copy: no request reaches the server
    until(page, f"() => document.querySelector(\"input[name='{q.scale_items[0].code}'][value='3']\").checked")
    assert len(requests_seen) == before


def test_answered_offline_is_stored_once_and_the_thanks_page_leaves_nothing(
        browser, live_server, issue, questionnaire, session, app, requests_seen, offline_round, artifacts):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/c/{code}")
    assert "gửi trong vòng 7 ngày" in page.inner_text("#offline-note")
    ready(page, requests_seen)
    queue_offline(page, context, q, requests_seen)
    assert stored(session) == 0
    page.screenshot(path=str(artifacts / "queued.png"))
    context.set_offline(False)  # the online event sends the outbox
    until(page, THANKED)
    assert stored(session) == 1
    until(page, f"({OUTBOX})().then(c => c[0] === 0 && c[1] === 0)")
    until(page, f"({CACHED_PAGE})().then(found => !found)")
    serializer = app.session_interface.get_signing_serializer(app)
    for cookie in context.cookies():
        assert "respondent" not in serializer.loads(cookie["value"]), cookie["name"]
    assert "/phieu/token" in requests_seen
    context.close()


def test_two_tabs_give_one_response(browser, live_server, issue, questionnaire, session, requests_seen,
                                    offline_round):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    context = browser.new_context(locale="vi-VN")
    first = context.new_page()
    first.goto(f"{live_server}/c/{code}")
    ready(first, requests_seen)
    queue_offline(first, context, q, requests_seen)
    second = context.new_page()
    second.goto(f"{live_server}/phieu")  # offline: the cached page, which finds the waiting record too
    assert second.evaluate(OUTBOX)[0] == 1
    context.set_offline(False)
    until(first, f"({OUTBOX})().then(c => c[0] === 0)")
    second.wait_for_timeout(500)
    assert stored(session) == 1
    assert requests_seen.count("/phieu/token") >= 1
    context.close()


def test_queued_answers_are_sent_after_a_browser_restart(_playwright, live_server, issue, questionnaire, session,
                                                         requests_seen, offline_round, tmp_path):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    launch = dict(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS, locale="vi-VN")
    context = _playwright.chromium.launch_persistent_context(str(tmp_path / "profile"), **launch)
    page = context.new_page()
    page.goto(f"{live_server}/c/{code}")
    ready(page, requests_seen)
    queue_offline(page, context, q, requests_seen)
    context.close()  # the session cookie ends with the browser
    context = _playwright.chromium.launch_persistent_context(str(tmp_path / "profile"), **launch)
    page = context.new_page()
    page.goto(f"{live_server}/")  # any portal page sends what waits, with the code's session and a fresh token
    until(page, THANKED)
    assert stored(session) == 1
    context.close()


def test_a_round_closed_while_answers_wait_tells_and_keeps_them(browser, live_server, issue, questionnaire, session,
                                                                requests_seen, offline_round):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/c/{code}")
    ready(page, requests_seen)
    # online, a change is also saved to the server's draft, so nothing depends on this browser alone
    page.check(f"input[name='{q.scale_items[0].code}'][value='4']")
    for _ in range(100):
        session.expire_all()
        if session.scalar(sa.select(Draft.sealed)):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the change was not saved to the server's draft")
    queue_offline(page, context, q, requests_seen)
    offline_round.opens_on -= timedelta(days=30)
    offline_round.closes_on = offline_round.opens_on + timedelta(days=1)
    session.commit()
    context.set_offline(False)
    until(page, "() => document.getElementById('offline-status').textContent.includes('đã kết thúc')")
    assert page.evaluate(OUTBOX)[0] == 1 and stored(session) == 0
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "without-javascript"])
def test_the_respondent_flow_is_the_same_on_an_offline_round(browser, live_server, issue, questionnaire, session,
                                                             offline_round, artifacts, javascript):
    respondent_flow(browser, live_server, issue, questionnaire, session, artifacts, javascript)


def test_without_javascript_the_offline_round_is_a_plain_form(browser, live_server, issue, questionnaire, session,
                                                              offline_round):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    context = browser.new_context(locale="vi-VN", java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server}/c/{code}")
    answer(page, q)
    with page.expect_navigation():
        page.click("button[value='submit']")
    assert page.inner_text("h1") == "Cảm ơn Anh/Chị đã gửi phiếu" and stored(session) == 1
    context.close()


@pytest.fixture
def server_down(app):
    """Set ``server_down["on"]`` to answer every request 503, as a proxy does while the service is down."""
    state = {"on": False}
    inner = app.wsgi_app

    def maybe_down(environ, start_response):
        if state["on"]:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Service Unavailable"]
        return inner(environ, start_response)

    app.wsgi_app = maybe_down
    yield state
    app.wsgi_app = inner


def test_the_resend_button_sends_once_after_a_failed_send(browser, live_server, issue, questionnaire, session,
                                                          requests_seen, server_down, offline_round):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    context, page = open_with_clock_stopped(browser, live_server, code, requests_seen)
    answer(page, q)
    server_down["on"] = True
    page.click("button[value='submit']")
    until(page, "() => document.getElementById('offline-status').textContent.includes('Máy chủ chưa nhận phiếu')")
    assert page.is_visible("#offline-resend") and page.evaluate(OUTBOX)[0] == 1
    server_down["on"] = False
    page.wait_for_timeout(1000)
    assert stored(session) == 0 and page.evaluate(OUTBOX)[0] == 1
    page.get_by_role("button", name="Gửi lại").click()
    until(page, THANKED)
    assert stored(session) == 1
    # the retry that was waiting finds nothing left to send
    page.clock.run_for(10 * 60 * 1000)
    page.wait_for_timeout(500)
    assert stored(session) == 1 and page.evaluate(OUTBOX) == [0, 0]
    context.close()


def test_a_change_made_offline_reaches_the_server_draft_when_the_connection_returns(
        browser, live_server, issue, questionnaire, session, requests_seen, offline_round):
    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    first_item = q.scale_items[0].code
    context, page = open_with_clock_stopped(browser, live_server, code, requests_seen)
    context.set_offline(True)
    page.check(f"input[name='{first_item}'][value='2']")
    page.clock.run_for(4000)  # past the save's 3-second wait, offline
    page.wait_for_timeout(300)
    session.expire_all()
    assert not session.scalar(sa.select(Draft.sealed))
    context.set_offline(False)
    for _ in range(100):
        session.expire_all()
        if session.scalar(sa.select(Draft.sealed)):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the change made offline was not saved to the server's draft")
    context.close()
    # another browser, which keeps nothing of this code, finds the answer on the server
    other = browser.new_context(locale="vi-VN")
    page = other.new_page()
    page.goto(f"{live_server}/c/{code}")
    assert page.is_checked(f"input[name='{first_item}'][value='2']")
    other.close()


def test_a_code_revoked_while_answers_wait_is_said_once_and_the_answers_kept(
        browser, live_server, issue, questionnaire, session, requests_seen, offline_round):
    from survey_service.models import CodeBatch
    from survey_service.services import invitations

    [code] = issue("CC-CT", "SNV")
    q = questionnaire("CC-CT")
    context, page = open_with_clock_stopped(browser, live_server, code, requests_seen)
    queue_offline(page, context, q, requests_seen)
    invitations.revoke_codes(session, session.scalar(sa.select(CodeBatch)), secret="test-secret", actor="test")
    session.commit()
    context.set_offline(False)
    until(page, "() => document.getElementById('offline-status').textContent.includes('thu hồi')")
    posts = requests_seen.count("/phieu/token")
    page.clock.run_for(10 * 60 * 1000)  # past every timed retry: none is made
    page.wait_for_timeout(300)
    assert requests_seen.count("/phieu/token") == posts
    assert page.evaluate(OUTBOX)[0] == 1 and stored(session) == 0 and not page.is_visible("#offline-resend")
    context.close()

"""Fixtures shared by the suite: a fresh app and database per test, on SQLite and on PostgreSQL.

Every test that uses ``app`` runs twice: once on a new SQLite file, once on the PostgreSQL database named
by ``TEST_PG_URL`` (emptied after each test). Without PostgreSQL those runs skip with the reason shown,
unless ``SURVEY_REQUIRE_POSTGRES=1`` (set in CI), where they fail.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from survey_service import create_app
from survey_service.db import Base, get_session, make_engine

REPO_DIR = Path(__file__).resolve().parent.parent
QUESTIONNAIRE_DIR = REPO_DIR / "questionnaires"
ROUND_DIR = QUESTIONNAIRE_DIR / "rounds" / "QNA-2023"
ARTIFACTS_DIR = REPO_DIR / "test-artifacts"
PG_URL = os.environ.get("TEST_PG_URL")
REQUIRE_PG = os.environ.get("SURVEY_REQUIRE_POSTGRES") == "1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"

_pg_state: dict[str, object] = {}

# Property-based tests: the same examples on every run (CI and local), no example database, no deadline
# (the machine is shared). Another profile can be registered and chosen with HYPOTHESIS_PROFILE.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "app_config(**values): extra config for the app fixture")


def _pg_engine() -> sa.Engine | None:
    """Connect once per session; create the schema from the models on first use."""
    if "engine" not in _pg_state:
        engine = None
        if PG_URL:
            try:
                engine = make_engine(PG_URL)
                with engine.connect() as con:
                    con.execute(sa.text("select 1"))
                Base.metadata.drop_all(engine)
                _drop_alembic_version(engine)
                Base.metadata.create_all(engine)
            except sa.exc.OperationalError as exc:
                _pg_state["error"] = str(exc).splitlines()[0]
                engine = None
        _pg_state["engine"] = engine
    return _pg_state["engine"]


def _drop_alembic_version(engine: sa.Engine) -> None:
    with engine.begin() as con:
        con.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


def _truncate_all(engine: sa.Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as con:
        con.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def pg_or_skip() -> str:
    """The PostgreSQL URL, or skip (fail when PostgreSQL is required) with the reason."""
    if _pg_engine() is None:
        reason = ("PostgreSQL not reachable: set TEST_PG_URL (scripts/test.sh starts a local server)"
                  + (f" ({_pg_state.get('error')})" if _pg_state.get("error") else ""))
        if REQUIRE_PG:
            pytest.fail(reason)
        pytest.skip(reason)
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite'}"
        return
    url = pg_or_skip()
    yield url
    _truncate_all(_pg_engine())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request, tmp_path):
    """An empty database of each kind, for the migration tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite'}"
        return
    url = pg_or_skip()
    engine = make_engine(url)
    with engine.begin() as con:
        con.execute(sa.text("DROP SCHEMA IF EXISTS migtest CASCADE"))
        con.execute(sa.text("CREATE SCHEMA migtest"))
    yield url + "?options=-csearch_path%3Dmigtest"
    with engine.begin() as con:
        con.execute(sa.text("DROP SCHEMA IF EXISTS migtest CASCADE"))
    engine.dispose()


#: The test app's ``SECRET_KEY``, for tests that call services needing it.
SECRET = "test-secret"


@pytest.fixture
def app(request, database_url):
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "WTF_CSRF_ENABLED": False,
        "QUESTIONNAIRE_DIR": str(QUESTIONNAIRE_DIR),
        "SECRET_KEY": SECRET,
        "SHEET_SIGNING_KEYS": ["test-sheet-key"],
        "SESSION_COOKIE_SECURE": False,  # the browser tests use plain HTTP
    }
    marker = request.node.get_closest_marker("app_config")
    if marker:
        config.update(marker.kwargs)
    app = create_app(config)
    engine = app.extensions["db_engine"]
    if engine.dialect.name == "sqlite":
        Base.metadata.create_all(engine)
    with app.app_context():
        yield app
    engine.dispose()


@pytest.fixture
def session(app):
    return get_session()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def loaded_round(app, session):
    """The real QNA-2023 round, loaded."""
    from survey_service.services import rounds

    rounds.load_round(session, ROUND_DIR, QUESTIONNAIRE_DIR)
    session.commit()
    return rounds.get_round(session, "QNA-2023")


def collect_from_today(session, rnd) -> None:
    """Move a round's collection window around today, as the demo does (keying and imports need a round
    that is not closed); not audited, it is the test's setting."""
    from datetime import timedelta

    from survey_service.services import rounds

    today = rounds.local_today()
    rnd.opens_on, rnd.closes_on, rnd.closed_at = today - timedelta(days=7), today + timedelta(days=60), None
    session.commit()


def release_ballots(session, secret: str = SECRET) -> int:
    """Release every round's sealed ballots into responses, as closing the round does (without closing it):
    tests that look at stored responses right after a submission call this. Returns the ballots released."""
    import sqlalchemy as sa

    from survey_service.models import Round
    from survey_service.services import ballots, rounds

    released = sum(ballots.release(session, rnd, ballots.opener(rnd, secret), today=rounds.local_today(),
                                   everything=True).ballots
                   for rnd in session.scalars(sa.select(Round)))
    session.commit()
    return released


@pytest.fixture
def make_user(session):
    """Factory: ``make_user("supervisor", username="gs1")`` creates a committed staff account."""
    from survey_service.services import users

    counter = iter(range(1, 10_000))

    def make(role: str = "supervisor", username: str | None = None, password: str = PASSWORD, **kw):
        user = users.create_user(session, username or f"{role}{next(counter)}", password, role, actor="test", **kw)
        session.commit()
        return user

    return make


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, username: str, password: str = PASSWORD):
        return self._client.post("/staff/login", data={"username": username, "password": password})

    def logout(self):
        return self._client.post("/staff/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def staff_client(client, auth, make_user):
    """Factory: a test client logged in with a new account of the given role."""
    def login_as(role: str = "supervisor"):
        user = make_user(role)
        response = auth.login(user.username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client
    return login_as


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


# --- real browser ----------------------------------------------------------------------------------
@pytest.fixture
def live_server(app):
    """The app served over HTTP in a thread, for the browser."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def _playwright():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser(_playwright):
    """Debian's Chromium driven by Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        reason = "Chromium not installed (apt-get install chromium)"
        if REQUIRE_PG:  # CI: browser tests must run too
            pytest.fail(reason)
        pytest.skip(reason)
    browser = _playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def artifacts(request) -> Path:
    """Folder for screenshots and other artefacts of this test (kept after the run)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = ARTIFACTS_DIR / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


AXE_JS = REPO_DIR / "tests" / "vendor" / "axe-core" / "axe.min.js"
VIEWPORTS = {"phone": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 800}}


def axe_violations(page) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now: id, impact and the first targets."""
    if not page.evaluate("typeof window.axe === 'object'"):
        # Evaluated through the DevTools protocol, so the page's Content-Security-Policy stays as it is.
        page.evaluate("(source) => { (0, eval)(source); }", AXE_JS.read_text(encoding="utf-8"))
    found = page.evaluate("""async () => (await axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})).violations
        .map(v => ({id: v.id, impact: v.impact, targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    return found


@pytest.fixture
def staff_page(browser, live_server, make_user):
    """Factory: ``staff_page("supervisor", "desktop")`` — a browser page logged in with a new account
    (``javascript=False`` for a browser without scripts)."""
    contexts = []

    def open_page(role: str = "supervisor", viewport: str = "desktop", *, javascript: bool = True, **user):
        account = make_user(role, **user)
        context = browser.new_context(viewport=VIEWPORTS[viewport], locale="vi-VN", java_script_enabled=javascript,
                                      accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server}/staff/login")
        page.get_by_label("Tên đăng nhập").fill(account.username)
        page.get_by_label("Mật khẩu").fill(PASSWORD)
        page.get_by_role("button", name="Đăng nhập").click()
        page.wait_for_url(f"{live_server}/staff/")
        return page

    yield open_page
    for context in contexts:
        context.close()

"""The application factory and its configuration layers."""
import pytest

from survey_service import create_app


def test_testing_config_is_applied(app):
    assert app.testing
    assert app.config["WTF_CSRF_ENABLED"] is False


def test_missing_secret_stops_start_up(monkeypatch, tmp_path):
    monkeypatch.delenv("SURVEY_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite", "SECRET_KEY": None,
                    "SHEET_SIGNING_KEYS": None})


def test_sheet_key_must_differ_from_secret_key(tmp_path):
    with pytest.raises(RuntimeError, match="SHEET_SIGNING_KEYS"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite", "SECRET_KEY": "same",
                    "SHEET_SIGNING_KEYS": ["same"]})


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("SURVEY_LOGIN_FREE_FAILURES", "7")
    monkeypatch.setenv("SURVEY_SHEET_SIGNING_KEYS", '["new", "old"]')
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite"})
    assert app.config["LOGIN_FREE_FAILURES"] == 7
    assert app.config["SHEET_SIGNING_KEYS"] == ["new", "old"]


def test_test_dict_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SURVEY_LOGIN_FREE_FAILURES", "7")
    app = create_app({"TESTING": True, "LOGIN_FREE_FAILURES": 3, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite"})
    assert app.config["LOGIN_FREE_FAILURES"] == 3


def test_demo_mode_runs_without_secrets(tmp_path):
    app = create_app({"DEMO": True, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite",
                      "SECRET_KEY": None, "SHEET_SIGNING_KEYS": None})
    assert app.config["SECRET_KEY"] and app.config["SHEET_SIGNING_KEYS"]
    assert app.config["SECRET_KEY"] not in app.config["SHEET_SIGNING_KEYS"]


def test_sqlite_pragmas(app, session):
    if session.bind.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    assert session.execute(__import__("sqlalchemy").text("PRAGMA foreign_keys")).scalar() == 1
    assert session.execute(__import__("sqlalchemy").text("PRAGMA journal_mode")).scalar() == "wal"


def test_security_headers(client):
    response = client.get("/staff/login")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("value", ["one", -1, True, "1.5", [1], None])
def test_a_bad_trusted_proxies_setting_stops_start_up(tmp_path, value):
    with pytest.raises(ValueError, match="TRUSTED_PROXIES must be a whole number"):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite",
                    "TRUSTED_PROXIES": value})


def test_the_scheme_comes_from_a_trusted_proxy_only(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path}/x.sqlite"
    direct = create_app({"TESTING": True, "DATABASE_URL": url}).test_client()
    forged = direct.get("/staff/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in forged.headers
    monkeypatch.setenv("SURVEY_TRUSTED_PROXIES", "1")
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    assert app.config["TRUSTED_PROXIES"] == 1
    proxied = app.test_client().get("/staff/login", headers={"X-Forwarded-Proto": "https"})
    assert proxied.headers["Strict-Transport-Security"].startswith("max-age=")

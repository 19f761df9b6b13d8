"""Configuration defaults.

Layers, later wins: these defaults, ``instance/config.py``, ``SURVEY_*`` environment variables
(JSON-decoded when possible, e.g. ``SURVEY_DATABASE_URL``), then the test dict given to ``create_app``.
Secrets have no default: outside test and demo mode a missing ``SECRET_KEY`` or ``SHEET_SIGNING_KEYS``
stops start-up.
"""
from datetime import timedelta
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "SECRET_KEY": None,
    #: Keys that sign the sheet ids printed in QR codes. The first one signs, all of them verify, so a key
    #: can be rotated without invalidating sheets already printed. Never the same as SECRET_KEY.
    "SHEET_SIGNING_KEYS": None,
    "DEMO": False,
    "DATABASE_URL": None,  # None: SQLite file in the instance folder
    "QUESTIONNAIRE_DIR": str(REPO_DIR / "questionnaires"),
    #: Address printed in invitation links and sheet QR codes. None: the address the page was asked at
    #: (the CLI, which has no request, then warns and uses the demo's address).
    "PUBLIC_BASE_URL": None,
    "PORTAL_NAME": "Cổng thông tin điện tử cải cách hành chính tỉnh Quảng Nam",
    "ORGANISER": "Sở Nội vụ tỉnh Quảng Nam",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    #: Session cookies go over HTTPS only; the demo and the tests, served over plain HTTP, turn it off.
    "SESSION_COOKIE_SECURE": True,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
    #: A clerk keeps the keying screen open for hours; the CSRF token lives as long as the session.
    "WTF_CSRF_TIME_LIMIT": None,
    #: Failed logins per (username, client address) without delay; then 1 s, 2 s, 4 s ... before the next
    #: attempt is checked, at most LOGIN_MAX_DELAY_SECONDS; forgotten LOGIN_FORGET_SECONDS after the last.
    "LOGIN_FREE_FAILURES": 5,
    "LOGIN_MAX_DELAY_SECONDS": 900,
    "LOGIN_FORGET_SECONDS": 86_400,
    #: Failed code look-ups allowed per client address (IPv6: per /64) and window, counted in the database;
    #: sized in the README ("Guessing") so that an office behind one address never reaches it.
    "CODE_LOOKUP_LIMIT": 1000,
    "CODE_LOOKUP_WINDOW_SECONDS": 3600,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    #: What a 503 (database restarting, unreachable, read-only or full) tells clients to wait, in seconds.
    "UNAVAILABLE_RETRY_AFTER_SECONDS": 10,
    #: How often the progress dashboard asks the server for new figures.
    "DASHBOARD_POLL_SECONDS": 10,
    #: Time zone of the times shown to staff (stored times are UTC).
    "DISPLAY_TIMEZONE": "Asia/Ho_Chi_Minh",
}


def check_secrets(config) -> None:
    """Refuse to start without secrets unless testing or running the demo."""
    if config.get("TESTING") or config.get("DEMO"):
        return
    missing = [k for k in ("SECRET_KEY", "SHEET_SIGNING_KEYS") if not config.get(k)]
    if missing:
        raise RuntimeError(
            "Missing required secret setting(s): "
            + ", ".join(missing)
            + ". Set them in instance/config.py or as SURVEY_SECRET_KEY / SURVEY_SHEET_SIGNING_KEYS "
            '(a JSON list, e.g. \'["key-2024", "key-2023"]\').'
        )
    if config["SECRET_KEY"] in config["SHEET_SIGNING_KEYS"]:
        raise RuntimeError("SHEET_SIGNING_KEYS must not contain SECRET_KEY.")

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
    "SESSION_COOKIE_SECURE": False,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
    #: A clerk keeps the keying screen open for hours; the CSRF token lives as long as the session.
    "WTF_CSRF_TIME_LIMIT": None,
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_LOCKOUT_MINUTES": 15,
    #: Code look-ups allowed per client address and window (counted in the database).
    "CODE_LOOKUP_LIMIT": 20,
    "CODE_LOOKUP_WINDOW_SECONDS": 600,
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

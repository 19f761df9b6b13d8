"""Configuration defaults.

Layers, later wins: these defaults, ``instance/config.py``, ``SURVEY_*`` environment variables
(JSON-decoded when possible, e.g. ``SURVEY_DATABASE_URL``), then the test dict given to ``create_app``.
Secrets have no default: outside test and demo mode a missing ``SECRET_KEY`` or ``SHEET_SIGNING_KEYS``
stops the web application from starting; commands that validate files need neither.
"""
from datetime import timedelta
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
#: Where an installed wheel keeps its copies of the repository's top-level data folders.
BUNDLED_DIR = PACKAGE_DIR / "bundled"


def data_path(name: str) -> Path:
    """A top-level data folder or file of the repository (``questionnaires``, ``templates``, ``migrations``,
    ``alembic.ini``), or its copy inside the installed package when the service runs from a wheel."""
    packaged = BUNDLED_DIR / name
    return packaged if packaged.exists() else REPO_DIR / name


DEFAULTS = {
    "SECRET_KEY": None,
    #: Keys that sign the sheet ids printed in QR codes. The first one signs, all of them verify, so a key
    #: can be rotated without invalidating sheets already printed. Never the same as SECRET_KEY.
    "SHEET_SIGNING_KEYS": None,
    "DEMO": False,
    "DATABASE_URL": None,  # None: SQLite file in the instance folder
    "QUESTIONNAIRE_DIR": str(data_path("questionnaires")),
    #: Address printed in invitation links and sheet QR codes. None: the address the page was asked at
    #: (the CLI, which has no request, then warns and uses the demo's address).
    "PUBLIC_BASE_URL": None,
    #: How many reverse proxies in front of the service each add the client's address to X-Forwarded-For
    #: and set X-Forwarded-Proto (nginx in front of gunicorn: 1). 0 trusts neither header, so a client that
    #: reaches the service directly cannot choose the address its code look-ups and logins are counted under.
    "TRUSTED_PROXIES": 0,
    #: The portal's name in page titles and footers; None: "Khảo sát cải cách hành chính – <organiser>".
    "PORTAL_NAME": None,
    #: Who the pages about no round say runs the survey; None: the latest round's organiser (round.yaml).
    "ORGANISER": None,
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
    #: The same count applies to a browser holding the username's device cookie, and to nothing else then.
    "LOGIN_FREE_FAILURES": 5,
    "LOGIN_MAX_DELAY_SECONDS": 900,
    "LOGIN_FORGET_SECONDS": 86_400,
    #: Failed logins of one username from every address together, and from one address (IPv6: /64) with
    #: every username together, before the same growing delays; browsers with a device cookie are exempt.
    "LOGIN_ACCOUNT_FREE_FAILURES": 10,
    "LOGIN_ADDRESS_FREE_FAILURES": 20,
    #: How long the device cookie set at login exempts the browser from the two counts above.
    "LOGIN_DEVICE_COOKIE_DAYS": 180,
    #: Days an API token works after it is made; a new password or a revocation ends it sooner.
    "API_TOKEN_DAYS": 90,
    #: Failed code look-ups allowed per client address (IPv6: per /64) and window, counted in the database;
    #: sized in the README ("Guessing") so that an office behind one address never reaches it.
    "CODE_LOOKUP_LIMIT": 1000,
    "CODE_LOOKUP_WINDOW_SECONDS": 3600,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    # Photos and scanned PDFs of sheets posted for reading (all files of one upload together).
    "SHEET_UPLOAD_MAX_BYTES": 60 * 1024 * 1024,
    #: What a 503 (database restarting, unreachable, read-only or full) tells clients to wait, in seconds.
    "UNAVAILABLE_RETRY_AFTER_SECONDS": 10,
    #: How often the progress dashboard asks the server for new figures.
    "DASHBOARD_POLL_SECONDS": 10,
    #: Time zone of the times shown to staff (stored times are UTC).
    "DISPLAY_TIMEZONE": "Asia/Ho_Chi_Minh",
}


SECRETS = ("SECRET_KEY", "SHEET_SIGNING_KEYS")


def trusted_proxies(value) -> int:
    """``TRUSTED_PROXIES`` as a count. Anything else stops the start with the reason: a typo must neither
    trust a header that clients can forge nor silently count every client under the proxy's address."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"TRUSTED_PROXIES must be a whole number >= 0 (how many reverse proxies are in "
                         f"front of the service, e.g. SURVEY_TRUSTED_PROXIES=1 behind nginx), not {value!r}.")
    return value


class MissingSecret(RuntimeError):
    """A secret setting the service needs for what was asked is not set; the message says how to set it."""

    def __init__(self, message: str, missing: tuple[str, ...] = ()):
        super().__init__(message)
        self.missing = missing


def check_secrets(config, names=SECRETS) -> None:
    """Refuse to go on without the secrets ``names`` unless testing or running the demo."""
    if config.get("TESTING") or config.get("DEMO"):
        return
    missing = [k for k in names if not config.get(k)]
    if missing:
        how = " / ".join(f"SURVEY_{k}" for k in missing)
        raise MissingSecret(
            "Missing required secret setting(s): " + ", ".join(missing)
            + f". Set them in instance/config.py or as {how}"
            + (' (SHEET_SIGNING_KEYS is a JSON list, e.g. \'["key-2024", "key-2023"]\').'
               if "SHEET_SIGNING_KEYS" in missing else "."),
            tuple(missing),
        )
    if set(names) == set(SECRETS) and config["SECRET_KEY"] in config["SHEET_SIGNING_KEYS"]:
        raise MissingSecret("SHEET_SIGNING_KEYS must not contain SECRET_KEY.")

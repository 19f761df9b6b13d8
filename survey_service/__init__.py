"""Survey collection and sociological analysis for the provincial PAR INDEX survey."""
from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from survey_service import config as config_defaults

__version__ = "0.1.0"

def create_app(test_config: dict | None = None, *, require_secrets: bool = True) -> Flask:
    """Build the application: config, extensions, database, blueprints, error pages, CLI.

    The command line builds it with ``require_secrets=False``: validating files and ``--help`` need no
    secret, and each command that does need one checks for it (:func:`survey_service.cli.needs_secrets`).
    """
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(config_defaults.data_path("templates")),
    )
    load_config(app, test_config, require_secrets)
    trust_proxies(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def load_config(app: Flask, test_config: dict | None, require_secrets: bool = True) -> None:
    app.config.from_mapping(config_defaults.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("SURVEY")
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["DEMO"] and not app.config["TESTING"]:
        # Demo only: throw-away secrets, so logins do not survive a restart.
        app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or secrets.token_hex(32)
        app.config["SHEET_SIGNING_KEYS"] = app.config["SHEET_SIGNING_KEYS"] or [secrets.token_hex(32)]
    if app.config["TESTING"]:
        app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or "test-secret"
        app.config["SHEET_SIGNING_KEYS"] = app.config["SHEET_SIGNING_KEYS"] or ["test-sheet-key"]
    if isinstance(app.config["SHEET_SIGNING_KEYS"], str):
        app.config["SHEET_SIGNING_KEYS"] = [app.config["SHEET_SIGNING_KEYS"]]
    if require_secrets:
        config_defaults.check_secrets(app.config)
    if not app.config["DATABASE_URL"]:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'survey.sqlite'}"


def trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` reverse proxies, take the client's address and scheme from the headers they
    set (the n-th address from the right of X-Forwarded-For): otherwise every client behind the proxy shares
    its address, and so one rate-limit counter and one set of login delays."""
    proxies = app.config["TRUSTED_PROXIES"] = config_defaults.trusted_proxies(app.config["TRUSTED_PROXIES"])
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)


#: Endpoints that take sheet images (``SHEET_UPLOAD_MAX_BYTES``, not ``MAX_CONTENT_LENGTH``).
LARGE_UPLOADS = {"paper.read"}


def register_extensions(app: Flask) -> None:
    from flask_login import current_user

    from survey_service import db
    from survey_service.extensions import csrf, login_manager

    db.init_app(app)

    @app.before_request
    def _larger_uploads():
        """Scanned PDFs and phone photos of sheets are larger than anything else posted (before the CSRF
        check reads the form)."""
        if request.endpoint in LARGE_UPLOADS:
            request.max_content_length = app.config["SHEET_UPLOAD_MAX_BYTES"]

    csrf.init_app(app)
    # Templates get the lazy ``current_user`` proxy rather than a user loaded for every page: loading one
    # for a respondent's session (which holds no staff user) would rewrite their cookie on each request.
    login_manager.init_app(app, add_context_processor=False)
    app.context_processor(lambda: {"current_user": current_user})


def register_blueprints(app: Flask) -> None:
    from survey_service.web import register_blueprints as register

    register(app)


def register_error_handlers(app: Flask) -> None:
    from survey_service.web.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from survey_service.cli import register_commands as register

    register(app)

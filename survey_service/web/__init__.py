"""Web layer: one blueprint per audience. Each module exposes ``bp`` and may expose ``NAV``, the staff
home page links it offers as (endpoint, label, description, roles)."""
from __future__ import annotations

import importlib

from flask import Flask, abort, g, request
from werkzeug.routing import IntegerConverter

MODULES = ["auth", "staff", "admin", "respond", "codes", "dashboard", "api", "tokens", "results", "paper", "preview", "responses", "reminders"]


class IdConverter(IntegerConverter):
    """``<int:…>`` in URLs names database ids: a number past the column's range is a 404, not a 500."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def round_or_404(code: str):
    """The round named in a URL, or a 404 page naming it."""
    from survey_service.db import get_session
    from survey_service.services import rounds

    rnd = rounds.get_round(get_session(), code)
    if rnd is None:
        abort(404, description=f"Không có đợt khảo sát mã '{code[:32]}'.")
    note_round(rnd)
    return rnd


def default_round():
    """The round named by ``?round=``, else the most recent real one; a 404 page when there is none."""
    from survey_service.db import get_session
    from survey_service.services import sheets

    try:
        rnd = sheets.pick_round(get_session(), request.args.get("round"))
    except sheets.SheetError as exc:
        abort(exc.status, description=str(exc))
    note_round(rnd)
    return rnd


def note_round(rnd) -> None:
    """Remember that the page shows a simulated round, so the layout labels it (``simulated_round``)."""
    if getattr(rnd, "simulated", False):
        g.simulated_round = rnd.code


def _staff_rounds() -> list:
    """Every round, real ones first, for the round chooser of staff pages that take ``?round=``."""
    from survey_service.db import get_session
    from survey_service.services import rounds

    return sorted(rounds.list_rounds(get_session()), key=lambda r: r.simulated)


def _forget_round() -> None:
    g.pop("simulated_round", None)


def _simulated_round() -> dict:
    return {"simulated_round": g.get("simulated_round")}


def register_blueprints(app: Flask) -> None:
    app.url_map.converters["int"] = IdConverter
    nav = []
    for name in MODULES:
        module = importlib.import_module(f"survey_service.web.{name}")
        app.register_blueprint(module.bp)
        nav.extend(getattr(module, "NAV", []))
    app.extensions["staff_nav"] = nav
    # ``g`` lives as long as the app context, which a request may share (tests, CLI): start each page clean.
    app.before_request(_forget_round)
    app.context_processor(_simulated_round)
    app.jinja_env.globals["staff_rounds"] = _staff_rounds
    app.after_request(_security_headers)


def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'self'; form-action 'self'",
    )
    return response

"""Web layer: one blueprint per audience. Each module exposes ``bp`` and may expose ``NAV``, the staff
home page links it offers as (endpoint, label, description, roles)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from flask import Flask, abort, current_app, g, render_template, request
from werkzeug.routing import IntegerConverter

MODULES = ["auth", "staff", "admin", "respond", "codes", "dashboard", "api", "tokens", "results", "paper", "preview",
           "responses", "reminders"]


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


def public_base_url() -> str:
    """Where printed links point: ``PUBLIC_BASE_URL`` when set, else the address this request came to, so
    a server on another port or host prints links that work."""
    return (current_app.config["PUBLIC_BASE_URL"] or request.host_url).rstrip("/")


def confirmation_page(title: str, message: str, button: str, cancel_url: str, *, irreversible: bool = True):
    """A page asking to confirm an irreversible POST, or None once it is confirmed.

    The page posts the same fields again with ``confirmed=1``: a plain form, so it works without
    JavaScript, and a stray click or a replayed request without the field changes nothing.
    """
    if request.form.get("confirmed") == "1":
        return None
    fields = [(k, v) for k, v in request.form.items(multi=True) if k not in ("csrf_token", "confirmed")]
    return render_template("confirm.html", title=title, message=message, button=button, fields=fields,
                           cancel_url=cancel_url, irreversible=irreversible)


@dataclass
class Page:
    """One page of a long list: its items, its number (from 1), how many pages and items in all."""

    items: list
    number: int
    pages: int
    total: int


def page_of(items: list, per_page: int, arg: str = "page") -> Page:
    """The page of ``items`` named by the query argument ``arg`` (a bad or past-the-end number gives the
    nearest page)."""
    pages = max(1, -(-len(items) // per_page))
    number = min(max(request.args.get(arg, 1, type=int) or 1, 1), pages)
    return Page(items[(number - 1) * per_page:number * per_page], number, pages, len(items))


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
    from survey_service.vietnamese import register_filters

    app.url_map.converters["int"] = IdConverter
    register_filters(app)
    nav = []
    for name in MODULES:
        module = importlib.import_module(f"survey_service.web.{name}")
        app.register_blueprint(module.bp)
        nav.extend(getattr(module, "NAV", []))
    app.extensions["staff_nav"] = nav
    # Browsers ask for /favicon.ico whatever the page links to.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))
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

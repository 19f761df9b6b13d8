"""Web layer: one blueprint per audience. Each module exposes ``bp`` and may expose ``NAV``, the staff
home page links it offers as (endpoint, label, description, roles)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, render_template, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import IntegerConverter

MODULES = ["auth", "staff", "admin", "respond", "invitations", "progress", "api", "tokens", "results", "paper",
           "preview", "responses", "reminders", "frames", "phuctra"]


#: The largest database id (32-bit integer columns on PostgreSQL).
MAX_ID = 2**31 - 1
NUL_MESSAGE = ("Dữ liệu gửi lên có ký tự rỗng (NUL, mã 0), không được chấp nhận. Vui lòng xóa ký tự này "
               "(thường do sao chép từ tệp không phải văn bản) rồi gửi lại.")


class IdConverter(IntegerConverter):
    """``<int:…>`` in URLs names database ids: a number past the column's range is a 404, not a 500."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def parse_id(text: str) -> int | None:
    """A database id typed as ASCII digits within the column's range, else None (``"²".isdigit()`` is
    true, and a 20-digit number overflows the column)."""
    if not text or len(text) > 10 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def safe_next(target: str | None) -> str | None:
    """A same-site path to go to after login, or None. Browsers drop tabs and newlines and read a
    backslash as a slash, so ``/<tab>/evil.example`` or ``/<backslash>evil.example`` would leave the site:
    any control character, space or backslash is refused."""
    if not target or not target.startswith("/") or any(c <= " " or c in "\\\x7f" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target


def round_closed(rnd) -> bool:
    """Whether the round no longer collects (Vietnam's date): its pages then offer no change at all."""
    from survey_service.services import rounds

    return rounds.round_state(rnd, rounds.local_today()) == "closed"


def round_or_404(round_code: str):
    """The round named in a URL, or a 404 page naming it."""
    from survey_service.db import get_session
    from survey_service.services import rounds

    rnd = rounds.get_round(get_session(), round_code)
    if rnd is None:
        abort(404, description=f"Không có đợt khảo sát mã '{round_code[:32]}'.")
    note_round(rnd)
    return rnd


def default_round():
    """The round named by ``?round=``, else the most recent real one; a 404 page when there is none."""
    from survey_service.db import get_session
    from survey_service.services import sheets

    rnd = sheets.pick_round(get_session(), request.args.get("round"))
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
    """Remember the round the page shows, so the layout names its organiser and labels a simulated round
    (``simulated_round``)."""
    if getattr(rnd, "simulated", False):
        g.simulated_round = rnd.code
    if getattr(rnd, "organiser", ""):
        g.organiser = rnd.organiser


def _staff_rounds() -> list:
    """Every round, real ones first, for the round chooser of staff pages that take ``?round=``."""
    from survey_service.db import get_session
    from survey_service.services import rounds

    return sorted(rounds.list_rounds(get_session()), key=lambda r: r.simulated)


def _forget_round() -> None:
    g.pop("simulated_round", None)
    g.pop("organiser", None)


def _organiser() -> str:
    """Who the page says runs the survey: the organiser of the round it shows; on a page about no round,
    ORGANISER if set, else that of the latest real round."""
    if g.get("organiser"):
        return g.organiser
    if current_app.config.get("ORGANISER"):
        return current_app.config["ORGANISER"]
    try:
        real = [r for r in _staff_rounds() if not r.simulated]
    except SQLAlchemyError:  # (the page that says the database cannot be reached names nobody)
        return ""
    return max(real, key=lambda r: r.opens_on).organiser if real else ""


def _simulated_round() -> dict:
    return {"simulated_round": g.get("simulated_round"), "organiser": _organiser}


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
    app.before_request(_reject_nul)
    # Browsers ask for /favicon.ico whatever the page links to.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))
    # ``g`` lives as long as the app context, which a request may share (tests, CLI): start each page clean.
    app.before_request(_forget_round)
    app.context_processor(_simulated_round)
    app.jinja_env.globals["staff_rounds"] = _staff_rounds
    app.after_request(_security_headers)


def _reject_nul():
    """One check for every request: a NUL character in the path, the query or a form field is refused
    with a 400 before any view sees it (PostgreSQL cannot store it in text, and no answer needs it)."""
    if "\x00" in request.path or _has_nul(request.args) or (
            request.method not in ("GET", "HEAD", "OPTIONS") and _has_nul(request.form)):
        abort(400, description=NUL_MESSAGE)


def _has_nul(values) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values.getlist(key)) for key in values)


def _security_headers(response):
    if response.headers.get("Content-Disposition", "").startswith("attachment"):
        # Exports (code lists, results) must not stay in a shared computer's or a proxy's cache.
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'self'; form-action 'self'",
    )
    return response

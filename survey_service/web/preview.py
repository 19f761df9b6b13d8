"""Staff preview of every form of a round: the online form as a respondent sees it (on the desktop and in a
phone-sized frame) and the paper sheet as printed, without a code or a serial. Nothing is stored."""
from __future__ import annotations

import io

from flask import Blueprint, current_app, render_template, request, send_file, url_for

from survey_service.db import get_session
from survey_service.models import Role
from survey_service.services import portal, preview, printing
from survey_service.web import default_round, public_base_url, respond, round_or_404
from survey_service.web.auth import role_required
from survey_service.web.forms import answers_from

bp = Blueprint("preview", __name__, url_prefix="/staff/preview")

ROLES = (Role.SUPERVISOR, Role.ANALYST)
NAV = [("preview.index", "Xem trước phiếu", "Mọi phiếu của đợt như người trả lời thấy (máy tính, điện thoại) "
        "và như bản in, không cần mã mời", ROLES)]
PHONE_WIDTH = 360


def _selection() -> dict:
    """The agency (LĐ-CP: district) and division asked for, as given in the query."""
    return {k: request.args.get(k) or None for k in ("agency", "division")}


@bp.route("/")
@role_required(*ROLES)
def index():
    session, rnd = get_session(), default_round()
    return render_template("preview/index.html", round=rnd, forms=preview.round_forms(session, rnd),
                           divisions=preview.divisions(session, rnd))


def _preview_access(round_code, form_code):
    """The round, the agency and division chosen in the query string, and the portal access they preview."""
    rnd = round_or_404(round_code)
    chosen = _selection()
    access = preview.access(get_session(), rnd, form_code, agency_code=chosen["agency"],
                            division_code=chosen["division"])
    return rnd, chosen, access


@bp.route("/<round_code>/<form_code>", methods=["GET", "POST"])
@role_required(*ROLES)
def form(round_code, form_code):
    """The online form; answers posted here get the portal's own checks and are then thrown away."""
    rnd, chosen, access = _preview_access(round_code, form_code)
    links = _links(rnd.code, form_code, chosen)
    extra = {"preview": links, "preview_action": links["form"]}
    if request.method == "GET":
        return respond.preview_page(access, {}, {}, 200, **extra)
    answers = answers_from(request.form, rates_several=access.rates_several,
                           agency_code=access.cell.agency.code if access.cell.agency else "")
    try:
        portal.check_answers(access, answers, complete=request.form.get("action") != "save")
    except portal.AnswerErrors as exc:
        return respond.preview_page(access, request.form, exc.errors, 400, **extra)
    extra["preview_ok"] = ("Các câu trả lời hợp lệ: người trả lời sẽ "
                           + ("lưu được phiếu để trả lời tiếp." if request.form.get("action") == "save"
                              else "gửi được phiếu.") + " Trong chế độ xem trước không có gì được lưu.")
    return respond.preview_page(access, request.form, {}, 200, **extra)


@bp.route("/<round_code>/<form_code>/phone")
@role_required(*ROLES)
def phone(round_code, form_code):
    """The online form in a frame as wide as a small phone."""
    rnd, chosen, access = _preview_access(round_code, form_code)
    return render_template("preview/phone.html", round=rnd, access=access, links=_links(rnd.code, form_code, chosen),
                           width=PHONE_WIDTH)


@bp.route("/<round_code>/<form_code>/sheet.pdf")
@role_required(*ROLES)
def sheet(round_code, form_code):
    """The form as printed on paper, for a sample sheet that is not in the ledger."""
    session = get_session()
    rnd = round_or_404(round_code)
    sample = preview.sample_sheet(session, rnd, form_code, agency_code=_selection()["agency"])
    pdf = printing.sheets_pdf(session, [sample], base_url=public_base_url(),
                              signing_keys=current_app.config["SHEET_SIGNING_KEYS"], preview=True)
    session.rollback()  # the sample sheet was never added; nothing else may be left pending either
    return send_file(io.BytesIO(pdf), mimetype="application/pdf",
                     download_name=f"mau-phieu-{rnd.code}-{form_code}.pdf")


def _links(round_code: str, form_code: str, chosen: dict) -> dict[str, str]:
    args = {k: v for k, v in chosen.items() if v}
    return {
        "index": url_for(".index", round=round_code),
        "form": url_for(".form", round_code=round_code, form_code=form_code, **args),
        "phone": url_for(".phone", round_code=round_code, form_code=form_code, **args),
        "sheet": url_for(".sheet", round_code=round_code, form_code=form_code, **args),
    }

"""Analyst pages: a round's results table, ranking charts, per-agency item distributions, downloads,
(the JSON of the same results is in the staff API, web/api.py)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, abort, render_template, request
from flask import Response as FlaskResponse

from survey_service.db import get_session
from survey_service.models import Role, Round
from analysis.targets import VERDICTS
from survey_service.services import ballots, citizens, exports, report, results, rounds
from survey_service.web import charts, round_or_404
from survey_service.web.auth import role_required

bp = Blueprint("results", __name__)

ROLES = (Role.ANALYST, Role.SUPERVISOR)
NAV = [("results.index", "Kết quả khảo sát", "Điểm theo lĩnh vực, tỷ lệ hài lòng, xếp hạng, tải Excel/CSV/SPSS",
        ROLES)]
MIMETYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             "csv": "text/csv; charset=utf-8", "sav": "application/x-spss-sav",
             "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "pdf": "application/pdf"}


def results_or_error(round_code: str) -> tuple[Round, results.RoundResults]:
    """The round's results, or 404 for an unknown round and 422 when its settings cannot be used."""
    session, rnd = get_session(), round_or_404(round_code)
    if rounds.is_citizens(rnd):
        abort(404, description=f"Đợt {round_code} là đợt khảo sát người dân: xem trang kết quả của đợt.")
    return rnd, results.cached_results(session, rnd)


def citizens_report(rnd: Round) -> citizens.CitizenReport:
    """A citizens' round's results, leaving out the investigators phúc tra quarantined."""
    session = get_session()
    return citizens.report(session, rnd, quarantined=citizens.quarantined(session, rnd))


@bp.route("/staff/results/")
@role_required(*ROLES)
def index():
    session = get_session()
    return render_template("results/index.html", rounds=rounds.list_rounds(session))


@bp.route("/staff/results/<round_code>/")
@role_required(*ROLES)
def round_table(round_code):
    rnd = round_or_404(round_code)
    if rounds.is_citizens(rnd):
        return _citizens_page(rnd)
    rnd, res = results_or_error(round_code)
    earlier = _earlier(rnd)
    return render_template("results/round.html", round=rnd, res=res, kinds=res.kind_plurals,
                           flag_labels=results.flag_labels(res), records=results.records,
                           reason_labels=results.REASON_LABELS, rank_note=results.RANK_NOTE,
                           waiting_note=_waiting_note(rnd), verdicts=VERDICTS, earlier=earlier)


def _earlier(rnd: Round) -> list[Round]:
    """The rounds the report may compare ``rnd`` with: of the same kind, simulated or real alike."""
    return [r for r in rounds.list_rounds(get_session()) if r.id != rnd.id and r.simulated == rnd.simulated
            and rounds.is_citizens(r) == rounds.is_citizens(rnd)]


def _citizens_page(rnd: Round):
    rep = citizens_report(rnd)
    measures = list(dict.fromkeys(zip(rep.shares["measure"], rep.shares["measure_name"], strict=True)))
    shares: dict[str, list] = {}
    for r in results.records(rep.shares):
        rows = shares.setdefault(r["level"], [])
        if not rows or rows[-1][0] != r["domain"]:
            rows.append((r["domain"], {}))
        rows[-1][1][r["measure"]] = r
    unit = f"{rnd.structure.get('province_type', 'tỉnh')} {rnd.province}"
    return render_template(
        "results/citizens.html", round=rnd, rep=rep, measures=measures, shares=shares, province_label=unit,
        levels=citizens.levels(rnd),
        improvements=results.records(rep.improvements[rep.improvements["level"] == "province"]
                                     .sort_values("est", ascending=False)),
        rates=results.records(rep.rates), verdicts=VERDICTS,
        min_group=ballots.min_group(rnd.settings), waiting_note=_waiting_note(rnd), earlier=_earlier(rnd))


def _waiting_note(rnd: Round) -> str:
    """What waits in the ballot box: pages count it, ``round release`` or the close releases it."""
    return ballots.waiting_note(ballots.waiting_count(get_session(), rnd.id), owner_sealed=bool(rnd.ballot_public_key),
                                over=rnd.closed_at is None and rounds.local_today() > rnd.closes_on)


@bp.route("/staff/results/<round_code>/ranking-<kind>.png")
@role_required(*ROLES)
def ranking_chart(round_code, kind):
    rnd, res = results_or_error(round_code)
    if kind not in res.kind_plurals:
        abort(404)
    png = charts.ranking_png(res.summary[res.summary["agency_kind"] == kind],
                             f"{rnd.code} — {res.kind_plurals[kind]}", simulated=rnd.simulated)
    return FlaskResponse(png, mimetype="image/png")


@bp.route("/staff/results/<round_code>/agency/<agency>")
@role_required(*ROLES)
def agency_page(round_code, agency):
    rnd, res = results_or_error(round_code)
    summary = res.summary[res.summary["agency"] == agency]
    if summary.empty:
        abort(404, description=f"Không có cơ quan {agency} trong đợt {round_code}.")
    return render_template("results/agency.html", round=rnd, res=res, row=results.records(summary)[0],
                           criteria=results.records(res.criteria[res.criteria["agency"] == agency]),
                           items=results.records(res.items[res.items["agency"] == agency]), kinds=res.kind_labels,
                           flag_labels=results.flag_labels(res), reason_labels=results.REASON_LABELS,
                           rank_note=results.RANK_NOTE, withheld_message=results.withheld_message(res),
                           min_breakdown=res.provenance["analysis_parameters"]["min_breakdown"])


@bp.route("/staff/results/<round_code>/agency/<agency>/items.png")
@role_required(*ROLES)
def agency_chart(round_code, agency):
    rnd, res = results_or_error(round_code)
    items = res.items[res.items["agency"] == agency]
    if items.empty:
        abort(404, description=f"Không có câu trả lời về {agency}.")
    name = res.summary.loc[res.summary["agency"] == agency, "agency_name"]
    groups = {form: rounds.questionnaire_for(get_session(), rnd, form).respondent_group
              for form in items["group"].unique()}
    png = charts.items_png(items, f"{name.iloc[0] if len(name) else agency} — {rnd.code}", scales=res.scales,
                           groups=groups, simulated=rnd.simulated)
    return FlaskResponse(png, mimetype="image/png")


@bp.route("/staff/results/<round_code>/download.<fmt>")
@role_required(*ROLES)
def download(round_code, fmt):
    if "." + fmt not in exports.FORMATS:
        abort(404)
    if rounds.is_citizens(round_or_404(round_code)):
        return _citizens_download(round_or_404(round_code), fmt)
    rnd, res = results_or_error(round_code)
    with tempfile.TemporaryDirectory() as tmp:
        path = exports.export(res, Path(tmp) / f"{rnd.code}-ket-qua.{fmt}")
        data = path.read_bytes()
    return FlaskResponse(data, mimetype=MIMETYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{rnd.code}-ket-qua.{fmt}"'})


def _citizens_download(rnd: Round, fmt: str):
    """A citizens' round's tables: every table in the workbook, the shares alone as CSV."""
    rep = citizens_report(rnd)
    if fmt == "xlsx":
        with tempfile.TemporaryDirectory() as tmp:
            data = citizens.export(rep, Path(tmp) / "ket-qua.xlsx").read_bytes()
    elif fmt == "csv":
        data = next(iter(citizens.tables(rep).values())).to_csv(index=False).encode("utf-8-sig")
    else:
        abort(404, description="Kết quả khảo sát người dân tải về dạng Excel hoặc CSV.")
    return FlaskResponse(data, mimetype=MIMETYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{rnd.code}-hai-long.{fmt}"'})


@bp.route("/staff/results/<round_code>/report.<fmt>")
@role_required(*ROLES)
def report_download(round_code, fmt):
    """The survey report as Word or PDF, compared with the round named by ``?previous=`` if any."""
    if "." + fmt not in report.FORMATS:
        abort(404)
    rnd = round_or_404(round_code)
    previous_code = request.args.get("previous", "").strip()
    previous = round_or_404(previous_code) if previous_code else None
    name = f"{rnd.code}-bao-cao" + (f"-so-voi-{previous.code}" if previous else "") + f".{fmt}"
    with tempfile.TemporaryDirectory() as tmp:
        path, = report.write_report(get_session(), rnd, [Path(tmp) / name], previous=previous)
        data = path.read_bytes()
    return FlaskResponse(data, mimetype=MIMETYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}"'})

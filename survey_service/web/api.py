"""The JSON API (``/api/v1``), for staff with an API token, and its OpenAPI 3 document.

Calls authenticate with ``Authorization: Bearer <token>`` (no cookies, so no CSRF). Endpoints declare who
may call them with :func:`api_roles`, and describe themselves in :data:`OPENAPI` next to their code.
"""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from functools import wraps
from pathlib import Path

from flask import Blueprint, abort, current_app, g, jsonify, request

from survey_service import questionnaires as qn

from survey_service.db import get_session
from survey_service.extensions import csrf
from survey_service.models import Role
from survey_service.services import progress, quotas, results, rounds, users
from survey_service.web import round_or_404
from survey_service.web.results import results_or_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

_ERROR = {"$ref": "#/components/schemas/Error"}

#: The OpenAPI document; each endpoint adds its path here, beside its view.
OPENAPI: dict = {
    "openapi": "3.0.3",
    "info": {
        "title": "Survey service API (PAR INDEX / Chỉ số CCHC)",
        "version": "1",
        "description": "Read-only access for staff. Get a token on the staff page “Mã truy cập API” or with "
                       "`survey-service users token USERNAME`, and send it as `Authorization: Bearer <token>`."
                       " A token works for `API_TOKEN_DAYS` days (90 by default) and ends sooner when its "
                       "owner's password is changed or reset, or when it is revoked on that page or by an "
                       "admin.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "paths": {},
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message", "status"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}, "status": {"type": "integer"}}},
        },
        "responses": {
            "Unauthorized": {"description": "No token, or a token that is not valid (unknown, expired, "
                                            "revoked, or of a disabled account).",
                             "content": {"application/json": {"schema": _ERROR}}},
            "Forbidden": {"description": "The token's account has a role that may not use this endpoint.",
                          "content": {"application/json": {"schema": _ERROR}}},
            "NotFound": {"description": "No such round.", "content": {"application/json": {"schema": _ERROR}}},
            "BadRequest": {"description": "A filter value that is not allowed.",
                           "content": {"application/json": {"schema": _ERROR}}},
        },
    },
}


def api_roles(*roles: Role):
    """Require a valid bearer token (401) of one of ``roles`` or an admin (403); sets ``g.api_user``."""
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            user = users.user_for_token(get_session(), token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                response = jsonify(error="Chưa xác thực", status=401,
                                   message="Thiếu mã truy cập API hợp lệ (Authorization: Bearer <mã>). "
                                           "Mã hết hạn sau một thời gian và hết hiệu lực khi đổi mật khẩu "
                                           "hoặc bị thu hồi: tạo mã mới trên trang “Mã truy cập API”.")
                response.status_code = 401
                response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
                return response
            if user.role is not Role.ADMIN and user.role not in roles:
                abort(403, description="Vai trò của tài khoản này không được dùng chức năng API này.")
            g.api_user = user
            return view(*args, **kwargs)
        return wrapped
    return decorator


@bp.route("/openapi.json")
def openapi():
    """The document, with the agency kinds of the rounds loaded (a round declares its own kinds) and the
    form codes of the configured questionnaires as the ``form`` enum."""
    doc = copy.deepcopy(OPENAPI)
    codes = list(qn.load_form_codes(Path(current_app.config["QUESTIONNAIRE_DIR"]) / "forms.yaml"))
    for path in doc["paths"].values():
        for param in path.get("get", {}).get("parameters", []):
            if param["name"] == "form":
                param["schema"]["enum"] = codes
    labels: dict[str, list[str]] = {}
    for rnd in rounds.list_rounds(get_session()):
        for code, label in rnd.kind_labels.items():
            labels.setdefault(code, []).append(f"{rnd.code}: {label}")
    described = "; ".join(f"`{code}` ({', '.join(names)})" for code, names in labels.items())
    kind = {"type": "string",
            "description": f"An agency kind that a round declares. Loaded rounds: {described or 'none'}."}
    if labels:
        kind["enum"] = list(labels)
    schemas = doc["components"]["schemas"]
    schemas["AgencyKind"] = kind
    schemas["CellKind"] = {"type": "string", "enum": [*labels, progress.MATRIX],
                           "description": "The agency kind of a quota cell's agency, or `matrix` for the single "
                                          "cell of a matrix form."}
    return jsonify(doc)


# --- quotas --------------------------------------------------------------------------------------
_FIGURES_SCHEMA = {
    "target": {"type": "integer", "description": "Target number of respondents."},
    "verified": {"type": "integer", "description": "Distinct respondents: online responses, plus paper "
                                                   "responses whose sheet is verified or that were imported."},
    "keyed": {"type": "integer", "description": "Paper sheets keyed but not yet verified."},
    "started": {"type": "integer", "description": "Online drafts: codes opened, answers saved, not submitted."},
    "issued": {"type": "integer", "description": "Paper sheets issued and not returned."},
    "surplus": {"type": "integer", "description": "Respondents flagged surplus, plus, for online cells, "
                                                  "unflagged verified respondents beyond the target."},
    "shortfall": {"type": "integer", "description": "max(0, target - verified); in totals, the sum over cells."},
    "percent": {"type": "number", "nullable": True, "description": "100 * verified / target (null if target 0)."},
}
OPENAPI["components"]["schemas"]["Figures"] = {"type": "object", "properties": _FIGURES_SCHEMA}
OPENAPI["components"]["schemas"]["QuotaCell"] = {
    "type": "object",
    "properties": {
        "cell_id": {"type": "integer"},
        "form_code": {"type": "string", "example": "CC-CT"},
        "form_title": {"type": "string"},
        "agency_code": {"type": "string", "nullable": True, "description": "null for the matrix form's cell"},
        "agency_name": {"type": "string"},
        "kind": {"$ref": "#/components/schemas/CellKind"},
        "channel": {"type": "string", "enum": progress.CHANNELS},
        "soft_closed": {"type": "boolean", "description": "Online: no new starts. Paper: no new sheets printed; "
                                                          "sheets already out are still accepted."},
        "staff_count": {"type": "integer", "nullable": True},
        "last_response_on": {"type": "string", "format": "date", "nullable": True},
        **_FIGURES_SCHEMA,
    },
}
_FIGURES_MAP = {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Figures"}}
OPENAPI["paths"]["/rounds/{round}/quotas"] = {
    "get": {
        "summary": "Quota cells of a round with live progress across both channels",
        "description": "Counts distinct respondents (`respondent_key`): an LĐ-CP respondent rates several "
                       "departments and counts once, in their district's cell. Roles: supervisor, analyst, admin.",
        "parameters": [
            {"name": "round", "in": "path", "required": True, "schema": {"type": "string"}, "example": "QNA-2023"},
            {"name": "kind", "in": "query", "schema": {"$ref": "#/components/schemas/CellKind"}},
            {"name": "form", "in": "query", "schema": {"type": "string"}, "description": "A form code of the round."},
            {"name": "channel", "in": "query", "schema": {"type": "string", "enum": progress.CHANNELS}},
            {"name": "sort", "in": "query", "schema": {"type": "string", "enum": progress.SORTS}},
        ],
        "responses": {
            "200": {"description": "Progress per cell and totals.", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "round": {"type": "string"},
                    "generated_at": {"type": "string", "format": "date-time"},
                    "surplus_in_analysis": {"type": "boolean"},
                    "filters": {"type": "object"},
                    "last_response_on": {"type": "string", "format": "date", "nullable": True},
                    "total": {"$ref": "#/components/schemas/Figures"},
                    "by_form": _FIGURES_MAP, "by_kind": _FIGURES_MAP, "by_channel": _FIGURES_MAP,
                    "cells": {"type": "array", "items": {"$ref": "#/components/schemas/QuotaCell"}},
                },
            }}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
            "404": {"$ref": "#/components/responses/NotFound"},
        },
    }
}

for _filter in OPENAPI["paths"]["/rounds/{round}/quotas"]["get"]["parameters"][1:]:
    _filter["allowEmptyValue"] = True  # ``?kind=``, as an HTML form sends an unset filter, means no filter


@bp.route("/rounds/<round_code>/quotas")
@api_roles(Role.SUPERVISOR, Role.ANALYST)
def round_quotas(round_code):
    session, rnd = get_session(), round_or_404(round_code)
    forms = progress.form_titles(session, rnd)
    filters = progress.parse_filters(request.args, forms, progress.kinds(rnd))
    data = progress.round_progress(session, rnd, filters, forms=forms)
    return jsonify({
        "round": rnd.code,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "surplus_in_analysis": quotas.surplus_in_analysis(rnd),
        **data.as_dict(),
    })


# --- results -------------------------------------------------------------------------------------
_INTERVAL = {"type": "array", "items": {"type": "number", "nullable": True}, "minItems": 2, "maxItems": 2}
OPENAPI["paths"]["/rounds/{round}/results"] = {
    "get": {
        "summary": "Per-agency results of a round: criterion points, survey points, satisfaction, ranks",
        "description": "Recomputed from the stored responses with the round's methodology. Intervals are 95% "
                       "confidence intervals (rank: Monte-Carlo rank interval within the agency kind). A value "
                       "without valid data is null and flagged `khong_du_lieu`, never 0. A group (form) "
                       "with fewer respondents about an agency than the round's `min_breakdown` enters no "
                       "figure; a value only such groups could give is null and flagged `khong_cong_bo`, and "
                       "an agency that has only such groups is withheld: `withheld` is `small_group`, "
                       "`withheld_message` says why, every figure and `n` are null and it has no rank. "
                       "`targets` gives each target of the round (round.yaml) with the one-sided 95% bounds and "
                       "the verdict: `dat` (lower bound at or above the target), `khong_dat` (upper bound below), "
                       "`chua_du_can_cu` (the interval holds it), and the sample a decision would need. "
                       "`provenance` names the "
                       "questionnaire versions, the methodology hash and the software version that produced the "
                       "numbers. Roles: analyst, supervisor, admin.",
        "parameters": [{"name": "round", "in": "path", "required": True, "schema": {"type": "string"},
                        "example": "QNA-2023"}],
        "responses": {
            "200": {"description": "Results.", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "provenance": {"type": "object", "properties": {
                        "round": {"type": "string"}, "methodology_hash": {"type": "string"},
                        "questionnaire_versions": {"type": "object", "additionalProperties": {
                            "type": "array", "items": {"type": "string"}}},
                        "software_version": {"type": "string"}, "analysis_parameters": {"type": "object"},
                        "surplus_in_analysis": {"type": "boolean"}, "counts": {"type": "object"}}},
                    "flag_labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "reliability_labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "agencies": {"type": "array", "items": {"type": "object", "properties": {
                        "agency": {"type": "string"}, "name": {"type": "string"},
                        "kind": {"$ref": "#/components/schemas/AgencyKind"},
                        "withheld": {"type": "string", "enum": ["small_group"], "nullable": True},
                        "withheld_message": {"type": "string", "nullable": True},
                        "n": {"type": "integer", "nullable": True},
                        "n_eff_min": {"type": "number", "nullable": True},
                        "survey_points": {"type": "number", "nullable": True}, "max_points": {"type": "number"},
                        "survey_points_se": {"type": "number", "nullable": True}, "survey_points_ci": _INTERVAL,
                        "satisfaction_pct": {"type": "number", "nullable": True}, "satisfaction_ci": _INTERVAL,
                        "positive_pct": {"type": "number", "nullable": True},
                        "rank": {"type": "integer", "nullable": True}, "rank_interval": _INTERVAL,
                        "groups": {"type": "array", "items": {"type": "string"}},
                        "rank_same_groups": {"type": "integer", "nullable": True},
                        "n_same_groups": {"type": "integer", "nullable": True},
                        "rank_same_groups_interval": _INTERVAL,
                        "survey_points_df": {"type": "number", "nullable": True},
                        "satisfaction_se": {"type": "number", "nullable": True},
                        "satisfaction_df": {"type": "number", "nullable": True},
                        "survey_points_reliability": {"type": "array", "items": {"type": "string"}},
                        "satisfaction_reliability": {"type": "array", "items": {"type": "string"}},
                        "flags": {"type": "array", "items": {"type": "string"}},
                        "targets": {"type": "array", "items": {"type": "object", "properties": {
                            "indicator": {"type": "string", "enum": ["satisfaction", "survey_points"]},
                            "label": {"type": "string", "nullable": True}, "target": {"type": "number"},
                            "bounds_95_one_sided": _INTERVAL,
                            "verdict": {"type": "string", "enum": ["dat", "khong_dat", "chua_du_can_cu"],
                                        "nullable": True},
                            "verdict_label": {"type": "string", "nullable": True},
                            "n_eff_needed": {"type": "integer", "nullable": True},
                            "n_needed": {"type": "integer", "nullable": True}}}},
                        "criteria": {"type": "array", "items": {"type": "object", "properties": {
                            "criterion": {"type": "string"}, "name": {"type": "string"},
                            "withheld": {"type": "string", "enum": ["small_group"], "nullable": True},
                            "max_points": {"type": "number"}, "score": {"type": "number", "nullable": True},
                            "points": {"type": "number", "nullable": True},
                            "points_se": {"type": "number", "nullable": True}, "points_ci": _INTERVAL,
                            "n": {"type": "integer", "nullable": True},
                            "n_eff": {"type": "number", "nullable": True},
                            "df": {"type": "number", "nullable": True},
                            "reliability": {"type": "array", "items": {"type": "string"}},
                            "positive_pct": {"type": "number", "nullable": True},
                            "flags": {"type": "array", "items": {"type": "string"}},
                            "missing_groups": {"type": "array", "items": {"type": "string"}}}}},
                    }}},
                },
            }}}},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
            "404": {"$ref": "#/components/responses/NotFound"},
            "422": {"description": "The round's methodology settings cannot be used (the message names the "
                                   "setting).", "content": {"application/json": {"schema": _ERROR}}},
        },
    }
}


@bp.route("/rounds/<round_code>/results")
@api_roles(Role.ANALYST, Role.SUPERVISOR)
def round_results(round_code):
    _rnd, res = results_or_error(round_code)
    return jsonify(results.as_dict(res))

"""A round's results: load the counted responses from the database and score them with ``analysis``.

Which responses count: online responses; paper responses whose sheet is ``verified`` (or that have no
sheet because they were imported); surplus responses only when the round's
``settings["surplus_in_analysis"]`` is true. A sheet × agency is scored only when it answers at least
``validity.min_answered_share`` of its form's rated items (:func:`analysis.answered_enough`). Each
response is scored with the questionnaire version it was answered on, with the round's methodology
settings; every result carries its provenance so the same numbers can be recomputed years later.

The data is read with one query per table and turned into the long answers frame of
:mod:`analysis.scoring`, whose column names it keeps up to the exports (``response_id`` is the stored
respondent key, the primary sampling unit; ``group`` the form). Every number
is computed by ``analysis`` (:func:`analysis.score_round`, then the tables of :mod:`analysis.tables`);
this module only loads, passes the round's settings (the small-group rule ``min_breakdown`` among them:
``analysis`` leaves a group under it out of every figure and withholds an agency that has no other)
and adds provenance.
"""
from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

import analysis
from analysis import targets as target_rules
from survey_service import __version__
from survey_service import questionnaires as qn
from survey_service.models import (
    Agency, Answer, AuditEvent, QuestionnaireVersion, QuotaCell, Response, Round, RoundForm, Sheet,
)
from survey_service.services import progress, rounds
from survey_service.services.errors import ServiceError

#: No breakdown of fewer respondents than this, of any group about one agency (round setting
#: ``min_breakdown``; a round loaded before the setting existed gets this default).
MIN_BREAKDOWN = qn.OPTIONAL_SETTINGS["min_breakdown"]
#: Rank intervals: Monte-Carlo draws and the fixed seed that makes them reproducible.
RANK_DRAWS = 10_000
RANK_SEED = 2023
CONFIDENCE = 0.95

FLAG_LOW_RELIABILITY = analysis.FLAG_LOW_RELIABILITY
FLAG_WITHHELD = analysis.FLAG_WITHHELD
#: The label of FLAG_WITHHELD, with the round's ``min_breakdown`` (see :func:`flag_labels`).
WITHHELD_LABEL = ("Không công bố: số liệu chỉ có từ nhóm đối tượng dưới {n} người trả lời về cơ quan này "
                  "(để bảo đảm ẩn danh)")
FLAG_LABELS = {
    analysis.FLAG_NO_DATA: "Không có dữ liệu hợp lệ",
    analysis.FLAG_MISSING_GROUP: "Thiếu nhóm đối tượng (trọng số đã chuẩn hóa lại)",
    FLAG_LOW_RELIABILITY: ("Độ tin cậy thấp (khoảng tin cậy 95% rộng quá ngưỡng của đợt, "
                           "hoặc không ước lượng được sai số)"),
    FLAG_WITHHELD: WITHHELD_LABEL.format(n=MIN_BREAKDOWN),
}
#: Why an estimate is not reliable (:data:`analysis.REASONS`), per indicator; thresholds in the round's methodology.
REASON_LABELS = {
    "it_nguoi_tra_loi": "ít người trả lời",
    "mau_hieu_dung_nho": "cỡ mẫu hiệu dụng nhỏ",
    "it_bac_tu_do": "phương sai ước lượng từ quá ít phiếu (ít bậc tự do, hoặc ô mẫu chỉ có một phiếu)",
    "khoang_rong": "khoảng tin cậy 95% quá rộng",
}
#: Said wherever a rank is shown (docs/results.md, "Ranks").
RANK_NOTE = ("Xếp hạng trong nhóm cơ quan so sánh những tổ hợp nhóm đối tượng khác nhau: cơ quan thiếu một nhóm "
             "thì trọng số của nhóm đó được chia cho các nhóm còn lại. Xếp hạng «cùng nhóm đối tượng» chỉ so sánh "
             "các cơ quan được cùng những nhóm đối tượng đánh giá.")
#: Why an agency has no figure at all, in the API (``withheld``) and on the pages.
WITHHELD_SMALL_GROUP = "small_group"
WITHHELD_MESSAGE = ("Không công bố số liệu nào của cơ quan này: mọi nhóm đối tượng trả lời về cơ quan này "
                    "đều có dưới {n} người trả lời, nên số liệu có thể làm lộ câu trả lời của từng người.")
#: How published values are rounded (also written into the exports' methodology sheet).
ROUNDING_RULE = ("điểm làm tròn 2 chữ số thập phân, nửa xa số 0 trên giá trị thập phân (như hàm ROUND của Excel); "
                 "tổng điểm = tổng các điểm lĩnh vực chưa làm tròn, làm tròn một lần")
ANALYSIS_PARAMETERS = {
    "confidence_level": CONFIDENCE,
    "rounding": "half away from zero on the decimal value, 2 dp; total rounded once",
    "rank_draws": RANK_DRAWS,
    "rank_seed": RANK_SEED,
}


class ResultsError(ServiceError):
    """The round cannot be analysed as it stands; the message names the setting or data at fault."""

    status = 422


@dataclass(frozen=True)
class RoundData:
    """What the analysis needs from the database, already filtered to the counted responses."""

    round_code: str
    methodology: dict
    methodology_hash: str
    settings: dict
    #: code, kind, name of every agency of the round (also those without responses)
    agencies: pd.DataFrame
    #: one row per scored answer: ``analysis.ANSWER_COLUMNS`` + response_uid, channel, item_code, scale,
    #: criterion, valid (counts towards the validity share); every text column is categorical
    answers: pd.DataFrame
    #: item key → scale, criterion, item_code, text (item key = code, or code@version if versions disagree)
    items: pd.DataFrame
    #: scale code → Scale (options with labels) of the versions used
    scales: dict[str, qn.Scale]
    criteria: dict[str, str]
    #: form code → sorted version hashes of the responses analysed
    versions: dict[str, list[str]]
    counts: dict[str, int] = field(default_factory=dict)
    #: A demonstration round of generated responses: every output says so.
    simulated: bool = False
    #: the round's structure (``Round.structure``): agency kinds with their labels, own-staff forms
    structure: dict = field(default_factory=dict)
    #: the round's quota cells (the strata of the variance): ``quota_cell_id, stratum`` (its label, "form" or
    #: "form/agency"), ``form, cell_agency`` (the agency or LĐ-CP district of the cell, "" for none), ``population``
    #: (its staff from ``staff_counts.csv``, NaN where unknown)
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class RoundResults:
    """Plain frames for pages, exports and the API; ``provenance`` says exactly what produced them."""

    provenance: dict
    #: one row per agency: points, CIs, satisfaction, positive rate, n, rank, flags
    summary: pd.DataFrame
    #: one row per agency × criterion
    criteria: pd.DataFrame
    #: one row per agency × group × item: option counts, mean value, positive share (suppressed where due)
    items: pd.DataFrame
    #: weight diagnostics per agency × criterion
    weights: pd.DataFrame
    #: the methodology settings and analysis parameters as (setting, value) rows
    settings: pd.DataFrame
    #: every counted answer with its value and weight (S(t, c) = Σ weight · value); text columns categorical
    answers: pd.DataFrame
    scales: dict[str, qn.Scale]
    criterion_names: dict[str, str]
    #: agency kind → the Vietnamese label of one agency of it / of the kind as a group, in the round's order
    kind_labels: dict[str, str] = field(default_factory=dict)
    kind_plurals: dict[str, str] = field(default_factory=dict)
    #: the round's groups of an agency's own staff, never broken down below MIN_BREAKDOWN sheets
    own_staff_forms: tuple[str, ...] = ()
    #: item code → the question's text (the first version's, when versions differ)
    item_texts: dict[str, str] = field(default_factory=dict)
    #: per sampling cell: ``stratum, form, cell_agency, respondents, population, fraction`` (fpc = 1 − fraction)
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: item → criterion and scale of every item published (the map an analyst needs to rebuild the points)
    item_map: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: ``agency_kind, criterion, max_points`` of the round's methodology
    max_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: one row per agency × indicator with a target (round.yaml ``targets``): the target, one-sided 95 % bounds,
    #: the verdict (:data:`analysis.targets.VERDICTS`) and the sample a decision would need
    targets: pd.DataFrame = field(default_factory=pd.DataFrame)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
def counted_responses(rnd: Round):
    """The WHERE clause of the responses that enter the analysis (needs an outer join to Sheet)."""
    conditions = [
        Response.round_id == rnd.id,
        progress.VERIFIED,
    ]
    if not (rnd.settings or {}).get("surplus_in_analysis", False):
        conditions.append(Response.surplus.is_(False))
    return sa.and_(*conditions)


def load_round_data(session: Session, rnd: Round) -> RoundData:
    """Read the counted responses and their answers of ``rnd`` (one query per table; the answers,
    millions of rows, through :func:`_read_answers`)."""
    agencies = pd.DataFrame(
        session.execute(sa.select(Agency.id, Agency.code, Agency.kind, Agency.name)
                        .where(Agency.round_id == rnd.id).order_by(Agency.id)).all(),
        columns=["agency_id", "code", "kind", "name"])
    agencies["kind"] = [getattr(k, "value", k) for k in agencies["kind"]]

    responses = pd.DataFrame(
        _fetch(session,
               sa.select(Response.id, Response.uid, Response.form_code, Response.questionnaire_version_id,
                         Response.agency_id, Response.channel, Response.respondent_key, Response.quota_cell_id)
               .outerjoin(Sheet, Sheet.id == Response.sheet_id).where(counted_responses(rnd))),
        # the names of the answers table from here to the exports: the respondent key is the response_id
        # (the primary sampling unit), the form the respondent group
        columns=["response_pk", "response_uid", "group", "version_id", "response_agency_id", "channel",
                 "response_id", "quota_cell_id"])
    responses["channel"] = [getattr(c, "value", c) for c in responses["channel"]]
    # the versions answered, plus the round's current ones so settings are checked even without data
    current = session.scalars(sa.select(RoundForm.questionnaire_version_id).where(RoundForm.round_id == rnd.id))
    version_ids = sorted(set(responses["version_id"].tolist()) | set(current))
    versions = {
        vid: qn.Questionnaire.from_definition(definition, version=version).worded_for(
            rnd.province, rnd.province_type)
        for vid, definition, version in session.execute(
            sa.select(QuestionnaireVersion.id, QuestionnaireVersion.definition, QuestionnaireVersion.version)
            .where(QuestionnaireVersion.id.in_(version_ids))).all()
    } if version_ids else {}

    stmt = (sa.select(Answer.response_id, sa.func.coalesce(Answer.agency_id, Response.agency_id, NO_AGENCY),
                      Answer.item_code, Answer.value)
            .join(Response, Response.id == Answer.response_id)
            .outerjoin(Sheet, Sheet.id == Response.sheet_id).where(counted_responses(rnd))
            # a fixed row order (keys are random, so by response, agency and item): each sheet's rows come
            # together, and sums are added in one order, so the same data always gives the same last bits
            .order_by(Answer.response_id, sa.func.coalesce(Answer.agency_id, 0), Answer.item_code))
    cells = pd.DataFrame(
        session.execute(sa.select(QuotaCell.id, QuotaCell.form_code, Agency.code, QuotaCell.staff_count)
                        .outerjoin(Agency, Agency.id == QuotaCell.agency_id)
                        .where(QuotaCell.round_id == rnd.id).order_by(QuotaCell.id)).all(),
        columns=["quota_cell_id", "form", "cell_agency", "population"])
    return build_round_data(rnd, agencies, responses, _read_answers(session, stmt), versions, cells)


#: Stands for "no agency" in the answers query so that the agency column stays an integer column.
NO_AGENCY = -1


def _read_answers(session: Session, stmt) -> pd.DataFrame:
    """The answers query as columns ``response_pk, agency_id`` (int64) and ``item_code, value`` (categorical).

    Millions of rows: PostgreSQL streams them as CSV through ``COPY`` into ``pd.read_csv``, several
    times faster than fetching tuples; SQLite's driver only gives tuples, turned into arrays a slice
    at a time. Text items' free text stays in ``value`` here and is dropped by :func:`build_round_data`.
    A blank and a NULL value both mean "no answer", so COPY not telling them apart changes nothing.
    """
    conn = session.connection()
    columns = ["response_pk", "agency_id", "item_code", "value"]
    if conn.dialect.name == "postgresql":
        # only integers and enum values are bound here, so rendering them as SQL literals is safe
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        buf = io.BytesIO()
        with conn.connection.dbapi_connection.cursor() as cur, \
                cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buf.write(block)
        buf.seek(0)
        if not buf.getbuffer().nbytes:
            return _answers_frame([], [], [], [])
        # keep_default_na=False: a value such as "NA" is an answer to check, not a missing one
        return pd.read_csv(buf, header=None, names=columns, keep_default_na=False, na_values={"value": [""]},
                           dtype={"response_pk": np.int64, "agency_id": np.int64, "item_code": "category",
                                  "value": "category"})
    # in slices, each turned into a 2-D object array at once (far cheaper than transposing 10⁶ tuples)
    cursor, parts = conn.execute(stmt).cursor, []
    while chunk := cursor.fetchmany(200_000):
        parts.append(np.array(chunk, dtype=object))
    rows = np.concatenate(parts) if parts else np.empty((0, 4), dtype=object)
    return _answers_frame(*rows.T)


def _answers_frame(response_pk, agency_id, item_code, value) -> pd.DataFrame:
    return pd.DataFrame({"response_pk": np.array(response_pk, dtype=np.int64),
                         "agency_id": np.array(agency_id, dtype=np.int64),
                         "item_code": pd.Categorical(item_code), "value": pd.Categorical(value)})


def _fetch(session: Session, stmt) -> list[tuple]:
    """Rows as plain tuples straight from the driver (the ORM row objects cost seconds at 10⁶ rows)."""
    result = session.connection().execute(stmt)
    return [tuple(row) for row in result.cursor.fetchall()] if result.cursor is not None else []


def build_round_data(rnd: Round, agencies: pd.DataFrame, responses: pd.DataFrame, raw: pd.DataFrame,
                     versions: dict[int, qn.Questionnaire], cells: pd.DataFrame) -> RoundData:
    """Join responses, answers and questionnaire versions into the scoring frame; apply
    :func:`analysis.answered_enough` (the validity rule).

    ``cells`` are the round's quota cells (``quota_cell_id, form, cell_agency, population``): each answer's
    stratum is its response's cell, named "form/agency" ("form" for a cell of the whole province), with the
    cell's population for the finite population correction.

    ``raw`` is the frame of :func:`_read_answers`. With millions of answers every join is a look-up
    of integer positions rather than a merge, and every string column of the result is categorical,
    which keeps the frame small and lets :func:`compute_results` group on integer codes.
    """
    # a round stored before the settings took the analysis's names is read under today's names, here only
    methodology = qn.current_names(rnd.methodology)
    items, item_lookup, scales, criteria = _items_of(versions)

    # the item_lookup row of every answer: by its response's version and its item code (-1: none,
    # i.e. a text item, an item the version lacks or, not expected, a response the query left out)
    resp_pos = pd.Index(responses["response_pk"]).get_indexer(raw["response_pk"].to_numpy())
    version_index = pd.Index(sorted(versions))
    version_of_resp = version_index.get_indexer(responses["version_id"].to_numpy())
    item_cats = raw["item_code"].cat.categories
    # one extra row and column of -1 so that a position of -1 finds nothing
    lookup = np.full((len(version_index) + 1, len(item_cats) + 1), -1, dtype=np.int64)
    lk_version = version_index.get_indexer(item_lookup["version_id"])
    lk_item = item_cats.get_indexer(item_lookup["item_code"])
    known = lk_item >= 0
    lookup[lk_version[known], lk_item[known]] = np.flatnonzero(known)
    row = lookup[np.where(resp_pos >= 0, version_of_resp[resp_pos], -1), raw["item_code"].cat.codes.to_numpy()]
    agency_id = raw["agency_id"].to_numpy()
    keep = (row >= 0) & (agency_id != NO_AGENCY)
    resp_pos, row, agency_id = resp_pos[keep], row[keep], agency_id[keep]
    option = _stripped(raw["value"].array[keep])
    item_scale = _per_row(item_lookup["scale"], row)
    _check_options(item_scale, option, scales)
    excluded = [c for s in scales.values() for c in s.excluded_codes]
    valid = analysis.scored_answers(option, excluded)

    # validity (analysis's rule): share of the form's rated items answered, per sheet × agency; the
    # number of rated items is the response's own version's
    share = float(methodology.get("min_answered_share", 0.0))
    n_rated = np.array([len(versions[vid].scale_items) for vid in version_index], dtype=float)
    keep = analysis.answered_enough(
        pd.DataFrame({"response_id": resp_pos, "agency": agency_id, "option": option}),
        rated_items=n_rated[version_of_resp[resp_pos]], min_answered_share=share, excluded=excluded)
    unit, n_units = analysis.pair_codes(resp_pos, agency_id)
    n_invalid = np.unique(unit[~keep]).size
    resp_pos, row, agency_id, option, valid = resp_pos[keep], row[keep], agency_id[keep], option[keep], valid[keep]

    agency_codes = pd.Categorical(agencies["code"]).categories
    agency_row = pd.Index(agencies["agency_id"]).get_indexer(agency_id)  # -1: not an agency of the round
    cells = _cell_labels(cells)
    cell_of_resp = pd.Index(cells["quota_cell_id"]).get_indexer(responses["quota_cell_id"])
    answers = pd.DataFrame({
        "response_id": _per_row(responses["response_id"], resp_pos),
        # the sampling cell (quota cell) is the stratum of the variance, its staff the population
        "stratum": _per_row(cells["stratum"], cell_of_resp[resp_pos]),
        "population": cells["population"].to_numpy(dtype=float)[cell_of_resp[resp_pos]],
        "agency": _per_row(agencies["code"], agency_row, categories=agency_codes),
        "agency_kind": _per_row(agencies["kind"], agency_row),
        "group": _per_row(responses["group"], resp_pos),
        "item": _per_row(item_lookup["item"], row, categories=items["item"].tolist()),
        "option": option,
        "response_uid": _per_row(responses["response_uid"], resp_pos),
        "channel": _per_row(responses["channel"], resp_pos),
        "item_code": _per_row(item_lookup["item_code"], row),
        "scale": _per_row(item_lookup["scale"], row),
        "criterion": _per_row(item_lookup["criterion"], row),
        "valid": valid,
    })
    versions_used: dict[str, list[str]] = {}
    for vid in sorted(set(responses["version_id"].tolist())):
        versions_used.setdefault(versions[vid].code, []).append(versions[vid].version)
    return RoundData(
        round_code=rnd.code, simulated=bool(rnd.simulated), methodology=methodology,
        methodology_hash=rnd.methodology_hash,
        settings=dict(rnd.settings or {}), agencies=agencies[["code", "kind", "name"]].reset_index(drop=True),
        answers=answers, items=items, scales=scales, criteria=criteria,
        versions={k: sorted(v) for k, v in sorted(versions_used.items())},
        counts={"responses": int(responses.shape[0]), "response_agency_pairs": int(n_units),
                "invalid_response_agency_pairs": int(n_invalid)},
        structure=dict(rnd.structure), cells=cells,
    )


def _cell_labels(cells: pd.DataFrame) -> pd.DataFrame:
    """The quota cells with their stratum label ("form/agency", or "form" for a cell of the whole
    province) and the population as a float (NaN where ``staff_counts.csv`` gives none)."""
    out = cells.copy()
    out["cell_agency"] = out["cell_agency"].fillna("").astype(str)
    out["stratum"] = np.where(out["cell_agency"] == "", out["form"], out["form"] + "/" + out["cell_agency"])
    out["population"] = pd.to_numeric(out["population"], errors="coerce").astype(float)
    return out


def _per_row(values, positions: np.ndarray, categories=None) -> pd.Categorical:
    """``values[positions]`` as a categorical (missing where the position is -1): the strings of a
    small table spread over millions of answers as integer codes. Without explicit categories,
    the categories are the sorted values that occur, as ``pd.Categorical(values[positions])``."""
    table = pd.Categorical(values, categories=categories)
    codes = np.where(positions >= 0, table.codes[positions], -1)
    if categories is not None:
        return pd.Categorical.from_codes(codes, dtype=table.dtype)
    # keep the categories that occur: a count and a running sum, cheaper than sorting the codes
    used = np.bincount(codes[codes >= 0], minlength=len(table.categories)) > 0
    renumber = np.cumsum(used) - 1
    return pd.Categorical.from_codes(np.where(codes >= 0, renumber[codes], -1), categories=table.categories[used])


def _stripped(values: pd.Categorical) -> pd.Categorical:
    """Answer values with surrounding white space removed; blank ones missing. Strips the few
    distinct values (the categories), not every row."""
    stripped = pd.Series(values.categories, dtype=str).str.strip()
    return _per_row(stripped.where(stripped != ""), values.codes)


def _items_of(versions: dict[int, qn.Questionnaire]):
    """Items table of the versions used; an item whose scale or criterion differs between versions
    is keyed ``code@version`` so that each response is scored by its own version."""
    rows = []
    scales: dict[str, qn.Scale] = {}
    criteria: dict[str, str] = {}
    for vid, q in sorted(versions.items()):
        for item in q.scale_items:
            rows.append((vid, item.code, item.scale, item.criterion, item.text, q.version))
        for code, scale in q.scales.items():
            if code in scales and scales[code].valid_codes != scale.valid_codes:
                raise ResultsError(f"Thang đo {code} có các phương án khác nhau giữa các phiên bản phiếu; "
                                   "không thể chấm điểm chung.")
            scales.setdefault(code, scale)
        criteria.update({code: c.name for code, c in q.criteria.items()})
    lookup = pd.DataFrame(rows, columns=["version_id", "item_code", "scale", "criterion", "text", "version"])
    spec = lookup.groupby("item_code")[["scale", "criterion"]].nunique()
    split = set(spec.index[(spec["scale"] > 1) | (spec["criterion"] > 1)])
    lookup["item"] = np.where(lookup["item_code"].isin(split), lookup["item_code"] + "@" + lookup["version"],
                              lookup["item_code"])
    items = (lookup.drop_duplicates("item")[["item", "item_code", "scale", "criterion", "text"]]
             .sort_values("item").reset_index(drop=True))
    return items, lookup[["version_id", "item_code", "item", "scale", "criterion"]], scales, criteria


def _check_options(scale: pd.Categorical, option: pd.Categorical, scales: dict[str, qn.Scale]) -> None:
    """Raise for the first answer (in row order) whose option is not one of its item's scale."""
    scale_codes = scale.codes
    for scale_code, spec in scales.items():
        foreign = ~option.categories.isin(spec.codes)
        if scale_code not in scale.categories or not foreign.any():
            continue
        bad = (scale_codes == scale.categories.get_loc(scale_code)) & (option.codes >= 0)
        bad &= foreign[option.codes]
        if bad.any():
            raise ResultsError(f"Câu trả lời '{option[int(np.argmax(bad))]}' không thuộc thang đo {scale_code} "
                               f"(các phương án: {', '.join(spec.codes)}).")


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------
def scoring_settings(methodology: dict) -> dict:
    """The round's methodology as :func:`analysis.score_round` settings: the same names, with the
    confidence level and the defaults of the optional settings made explicit."""
    missing = [key for key in analysis.SETTINGS_KEYS if key not in methodology]
    if missing:
        raise ResultsError(f"Cấu hình phương pháp của đợt thiếu: {', '.join(missing)}.")
    known = set(analysis.SETTINGS_KEYS) | set(analysis.OPTIONAL_SETTINGS_KEYS)
    return {
        **{key: value for key, value in methodology.items() if key in known},
        "level": CONFIDENCE,
        "max_half_width": reliability_threshold(methodology),
        "lonely_psu": methodology.get("lonely_psu", analysis.DEFAULT_LONELY_PSU),
        "precision": {**analysis.DEFAULT_PRECISION, **methodology.get("precision", {})},
    }


def reliability_threshold(methodology: dict) -> float:
    """The round's ``max_half_width``: an estimate whose 95% interval reaches further than this share of
    its scale (maximum points, 100%) from the estimate is flagged."""
    return float(methodology.get("max_half_width", analysis.DEFAULT_MAX_HALF_WIDTH))


def _check_satisfaction_items(data: RoundData) -> None:
    """methodology.satisfaction_items must be exactly the items on the satisfaction scale."""
    listed = data.methodology.get("satisfaction_items")
    if not listed:
        return
    scale = data.methodology["satisfaction_scale"]
    on_scale = set(data.items.loc[data.items["scale"] == scale, "item_code"])
    extra = sorted(on_scale - set(listed))
    if extra:
        raise ResultsError(f"satisfaction_items không liệt kê các câu thuộc thang {scale}: {', '.join(extra)}; "
                           "tỷ lệ hài lòng tính trên mọi câu của thang này.")


# --------------------------------------------------------------------------------------------------
# Computing
# --------------------------------------------------------------------------------------------------
def compute_results(data: RoundData) -> RoundResults:
    """Score, estimate and rank a round; agencies without valid responses get NaN and a flag, agencies
    whose every group is under the round's ``min_breakdown`` get NaN and are withheld."""
    settings = {**scoring_settings(data.methodology), "min_group": min_breakdown(data.settings)}
    _check_satisfaction_items(data)
    items_table = data.items[["item", "scale", "criterion"]]
    try:
        options = rounds.scale_options(data.scales)
        cfg = analysis.validate_settings(settings, items=items_table, scales=options)
    except ValueError as exc:
        raise ResultsError(f"Cấu hình phương pháp không hợp lệ: {exc}") from None

    scored = data.answers
    if scored.empty:
        res = None
    else:
        try:
            res = analysis.score_round(scored[[*analysis.ANSWER_COLUMNS, "stratum", "population"]], items=items_table,
                                       scales=options, settings=settings)
        except ValueError as exc:
            raise ResultsError(f"Không tính được điểm: {exc}") from None

    criteria = analysis.criteria_table(data.agencies, data.criteria, cfg, res)
    ranks = None if res is None else analysis.agency_ranks(res, draws=RANK_DRAWS, seed=RANK_SEED,
                                                           level=CONFIDENCE)
    summary = analysis.summary_table(data.agencies, data.answers, cfg, res, criteria, ranks)
    targets = target_rules.round_targets(summary, data.structure.get("targets", []))
    summary = target_rules.with_verdicts(summary, targets)
    a = data.answers
    weights = analysis.answer_weights(a, cfg, res, response="response_uid")
    answers = pd.DataFrame({
        "response_uid": a["response_uid"], "response_id": a["response_id"], "group": a["group"],
        "channel": a["channel"], "agency": a["agency"], "agency_kind": a["agency_kind"], "item": a["item_code"],
        "criterion": a["criterion"], "scale": a["scale"], "option": a["option"],
        "value": weights["value"], "positive": weights["positive"], "group_weight": weights["group_weight"],
        "group_share": weights["group_share"], "satisfaction_share": weights["satisfaction_share"],
        "weight": weights["weight"],
        "stratum": a["stratum"], "population": a["population"],
    })
    return RoundResults(
        provenance=provenance(data),
        summary=summary,
        criteria=criteria,
        items=analysis.item_distributions(a, cfg, response="response_uid", item="item_code",
                                          min_group=min_breakdown(data.settings)),
        weights=analysis.response_weight_diagnostics(a, weights["weight"].to_numpy(), response="response_uid"),
        settings=settings_rows(data),
        answers=answers,
        scales=data.scales,
        criterion_names=data.criteria,
        kind_labels={k["code"]: k["label"] for k in data.structure["kinds"]},
        kind_plurals={k["code"]: k["plural"] for k in data.structure["kinds"]},
        own_staff_forms=tuple(data.structure["own_staff_forms"]),
        item_texts=dict(data.items.drop_duplicates("item_code")[["item_code", "text"]]
                        .itertuples(index=False)),
        cells=_sampling_cells(data, res),
        item_map=data.items.drop_duplicates("item_code")[["item_code", "criterion", "scale"]]
        .rename(columns={"item_code": "item"}).sort_values("item").reset_index(drop=True),
        max_points=pd.DataFrame([(k, c, p) for k, pts in cfg.max_points.items() for c, p in pts.items()],
                                columns=["agency_kind", "criterion", "max_points"]),
        targets=targets,
    )


def _sampling_cells(data: RoundData, res) -> pd.DataFrame:
    """The design's sampling cells with their form, agency or district, respondents published, population
    and the sampling fraction the variance uses (0 where the population is unknown)."""
    cols = ["stratum", "form", "cell_agency", "respondents", "population", "fraction"]
    if res is None:
        return pd.DataFrame(columns=cols)
    cells = res.cells.assign(stratum=res.cells["stratum"].astype(str)).drop(columns=["group", "population"])
    return cells.merge(data.cells[["stratum", "form", "cell_agency", "population"]], on="stratum", how="left")[cols]


def round_results(session: Session, rnd: Round) -> RoundResults:
    """Load and compute in one call (the CLI uses this; pages and the API use :func:`cached_results`)."""
    return compute_results(load_round_data(session, rnd))


#: Recently computed results by data fingerprint. A results page shows several charts, each its own
#: request; without this every one of them would load and score the whole round again.
_results_cache: OrderedDict[tuple, RoundResults] = OrderedDict()
_results_lock = threading.Lock()
RESULTS_CACHE_SIZE = 2


def data_fingerprint(session: Session, rnd: Round) -> tuple:
    """What the results depend on, read in one query: the round's settings, its responses, and the audit
    log's last event (every change to stored answers, sheet states and round files is audited)."""
    count, last_response = session.execute(
        sa.select(sa.func.count(Response.id), sa.func.max(Response.id)).where(Response.round_id == rnd.id)
    ).one()
    last_event = session.scalar(sa.select(sa.func.max(AuditEvent.id)))
    # the database and the moment the round was first loaded tell apart two databases holding the "same" round
    return (str(session.get_bind().url), rnd.id, rnd.loaded_at, rnd.methodology_hash,
            json.dumps(rnd.settings, sort_keys=True), count, last_response, last_event)


def cached_results(session: Session, rnd: Round) -> RoundResults:
    """:func:`round_results`, reused while the data it was computed from is unchanged.

    The fingerprint is checked against the database on every call, so several server processes each keep
    their own copy and none serves results older than the data.
    """
    key = data_fingerprint(session, rnd)
    with _results_lock:
        if key in _results_cache:
            _results_cache.move_to_end(key)
            return _results_cache[key]
    res = round_results(session, rnd)
    with _results_lock:
        _results_cache[key] = res
        while len(_results_cache) > RESULTS_CACHE_SIZE:
            _results_cache.popitem(last=False)
    return res


def min_breakdown(settings: dict | None) -> int:
    """The round's smallest group that may be broken down (item distributions, group figures)."""
    return int((settings or {}).get("min_breakdown", MIN_BREAKDOWN))


def flag_labels(res: RoundResults) -> dict[str, str]:
    """The flags' Vietnamese labels, the withheld one naming the round's ``min_breakdown``."""
    return {**FLAG_LABELS,
            FLAG_WITHHELD: WITHHELD_LABEL.format(n=res.provenance["analysis_parameters"]["min_breakdown"])}


def withheld_message(res: RoundResults) -> str:
    """Why an agency that has only groups under ``min_breakdown`` shows no figure."""
    return WITHHELD_MESSAGE.format(n=res.provenance["analysis_parameters"]["min_breakdown"])


def provenance(data: RoundData) -> dict:
    return {
        "round": data.round_code,
        "simulated": data.simulated,
        "methodology_hash": data.methodology_hash,
        "questionnaire_versions": data.versions,
        "software_version": __version__,
        "analysis_parameters": {**ANALYSIS_PARAMETERS, "min_breakdown": min_breakdown(data.settings)},
        "surplus_in_analysis": bool(data.settings.get("surplus_in_analysis", False)),
        "counts": dict(data.counts),
    }


def settings_rows(data: RoundData) -> pd.DataFrame:
    """Every methodology setting (flattened) and analysis parameter, for the export's settings sheet."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k in value:
                walk(f"{prefix}.{k}" if prefix else str(k), value[k])
        else:
            rows.append((prefix, json.dumps(value, ensure_ascii=False)))

    walk("", data.methodology)
    walk("analysis", ANALYSIS_PARAMETERS)
    rows.append(("analysis.rounding_rule", ROUNDING_RULE))
    rows.append(("analysis.max_half_width", json.dumps(reliability_threshold(data.methodology))))
    walk("round.settings", data.settings)
    return pd.DataFrame(rows, columns=["setting", "value"])


# --------------------------------------------------------------------------------------------------
# Plain data for the API and the pages
# --------------------------------------------------------------------------------------------------
def _plain(value):
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    return value


def as_dict(res: RoundResults) -> dict:
    """The results as JSON-ready data: provenance, then one entry per agency with its criteria.

    An agency withheld for its small groups says so (``withheld``: ``"small_group"``, ``withheld_message``);
    its figures, like a withheld criterion's, are null."""
    by_agency = {code: rows for code, rows in res.criteria.groupby("agency", sort=False)}
    targets = {code: rows for code, rows in res.targets.groupby("agency", sort=False)} if len(res.targets) else {}
    message = withheld_message(res)
    agencies = []
    for row in res.summary.to_dict("records"):
        crit = by_agency.get(row["agency"], pd.DataFrame())
        agencies.append({
            "agency": row["agency"], "name": row["agency_name"], "kind": row["agency_kind"],
            "withheld": WITHHELD_SMALL_GROUP if row["withheld"] else None,
            "withheld_message": message if row["withheld"] else None,
            "n": _plain(row["n"]), "n_eff_min": _plain(row["n_eff_min"]),
            "survey_points": _plain(row["survey_points"]), "max_points": _plain(row["max_points"]),
            "survey_points_se": _plain(row["survey_points_se"]),
            "survey_points_ci": [_plain(row["survey_points_ci_lo"]), _plain(row["survey_points_ci_hi"])],
            "satisfaction_pct": _plain(row["satisfaction"]),
            "satisfaction_ci": [_plain(row["satisfaction_ci_lo"]), _plain(row["satisfaction_ci_hi"])],
            "positive_pct": _plain(row["tltc"]),
            "rank": _plain(row["rank"]), "rank_interval": [_plain(row["rank_lo"]), _plain(row["rank_hi"])],
            "groups": [g for g in row["groups"].split("+") if g] if isinstance(row["groups"], str) else [],
            "rank_same_groups": _plain(row["rank_same"]), "n_same_groups": _plain(row["n_same"]),
            "rank_same_groups_interval": [_plain(row["rank_same_lo"]), _plain(row["rank_same_hi"])],
            "survey_points_df": _plain(row["survey_points_df"]), "satisfaction_se": _plain(row["satisfaction_se"]),
            "satisfaction_df": _plain(row["satisfaction_df"]),
            "survey_points_reliability": _reasons(row["survey_points_reliability"]),
            "satisfaction_reliability": _reasons(row["satisfaction_reliability"]),
            "flags": [f for f in str(row["flags"]).split(",") if f],
            "targets": [{
                "indicator": t["indicator"], "label": t["label"] or None, "target": _plain(t["target"]),
                "bounds_95_one_sided": [_plain(t["lower"]), _plain(t["upper"])],
                "verdict": t["verdict"], "verdict_label": target_rules.VERDICTS.get(t["verdict"]),
                "n_eff_needed": _plain(t["n_eff_needed"]), "n_needed": _plain(t["n_needed"]),
            } for t in targets.get(row["agency"], pd.DataFrame()).to_dict("records")] if not row["withheld"] else [],
            "criteria": [{
                "criterion": c["criterion"], "name": c["criterion_name"],
                "withheld": WITHHELD_SMALL_GROUP if FLAG_WITHHELD in str(c["flag"]).split(",") else None,
                "max_points": _plain(c["max_points"]),
                "score": _plain(c["score"]), "points": _plain(c["points"]), "points_se": _plain(c["points_se"]),
                "points_ci": [_plain(c["points_ci_lo"]), _plain(c["points_ci_hi"])], "n": _plain(c["n"]),
                "n_eff": _plain(c["n_eff"]), "df": _plain(c["df"]), "reliability": _reasons(c["reliability"]),
                "positive_pct": _plain(c["tltc"]),
                "flags": [f for f in str(c["flag"]).split(",") if f],
                "missing_groups": [g for g in str(c["missing_groups"]).split(",") if g],
            } for c in crit.to_dict("records")],
        })
    return {"provenance": res.provenance, "flag_labels": flag_labels(res), "reliability_labels": REASON_LABELS,
            "agencies": agencies}


def _reasons(value) -> list[str]:
    """Precision reasons (comma-separated codes; missing where there is no estimate) as a list."""
    return [r for r in value.split(",") if r] if isinstance(value, str) else []


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with missing values as None (for templates)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]

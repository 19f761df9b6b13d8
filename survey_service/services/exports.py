"""Writing a round's results: XLSX, CSV (UTF-8 with BOM), SPSS .sav (per agency and per response), and
the tidy long CSV of answers.

Every file carries the provenance of the numbers (round, questionnaire version hashes, methodology
hash, software version): a sheet of the workbook, the file label and notes of a .sav, and for a CSV a
sidecar ``<name>.provenance.json`` next to it, so that the CSV itself is a plain table that
``pandas.read_csv`` or Excel opens without options.

The files show the figures as ``analysis`` computed them: a group under the round's ``min_breakdown``
entered none of them, and an agency withheld for having only such groups has empty cells and the reason
in its flags. The per-response files leave those groups out, so every published score is Σ weight ×
value over the answers written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.targets import VERDICTS
from survey_service.services import tabular
from survey_service.services.errors import ServiceError
from survey_service.services.results import FLAG_LABELS, REASON_LABELS, RoundResults, flag_labels
from survey_service.vietnamese import number, percent, xlsx_format

FORMATS = (".xlsx", ".csv", ".sav")
SHEET_NAME_MAX = 31

#: Vietnamese headers of the summary (one row per agency).
SUMMARY_HEADERS = {
    "agency": "Mã cơ quan",
    "agency_name": "Tên cơ quan",
    "agency_kind": "Loại cơ quan",
    "survey_points": "Tổng điểm điều tra XHH",
    "survey_points_se": "Sai số chuẩn tổng điểm",
    "survey_points_ci_lo": "Tổng điểm: cận dưới KTC 95%",
    "survey_points_ci_hi": "Tổng điểm: cận trên KTC 95%",
    "max_points": "Điểm tối đa",
    "satisfaction": "Tỷ lệ hài lòng (%)",
    "satisfaction_se": "Sai số chuẩn tỷ lệ hài lòng",
    "satisfaction_ci_lo": "Tỷ lệ hài lòng: cận dưới KTC 95%",
    "satisfaction_ci_hi": "Tỷ lệ hài lòng: cận trên KTC 95%",
    "tltc": "Tỷ lệ đánh giá tích cực (%)",
    "n": "Số phiếu hợp lệ",
    "n_eff_min": "Cỡ mẫu hiệu dụng nhỏ nhất",
    "survey_points_df": "Tổng điểm: bậc tự do",
    "survey_points_reliability": "Tổng điểm: lý do độ tin cậy thấp",
    "satisfaction_df": "Tỷ lệ hài lòng: bậc tự do",
    "satisfaction_reliability": "Tỷ lệ hài lòng: lý do độ tin cậy thấp",
    "rank": "Xếp hạng trong nhóm (so sánh các tổ hợp nhóm đối tượng khác nhau)",
    "rank_lo": "Xếp hạng: cận trên (tốt nhất)",
    "rank_hi": "Xếp hạng: cận dưới (kém nhất)",
    "groups": "Các nhóm đối tượng được tính",
    "n_same": "Số cơ quan cùng loại có cùng các nhóm đối tượng",
    "rank_same": "Xếp hạng giữa các cơ quan có cùng các nhóm đối tượng",
    "rank_same_lo": "Xếp hạng cùng nhóm đối tượng: cận trên",
    "rank_same_hi": "Xếp hạng cùng nhóm đối tượng: cận dưới",
    "flags": "Cảnh báo độ tin cậy",
    "satisfaction_target": "Mục tiêu tỷ lệ hài lòng (%)",
    "satisfaction_verdict": "Đánh giá mục tiêu tỷ lệ hài lòng",
    "survey_points_target": "Mục tiêu tổng điểm",
    "survey_points_verdict": "Đánh giá mục tiêu tổng điểm",
}
#: Vietnamese headers of the targets sheet (one row per agency × indicator with a target).
TARGET_HEADERS = {
    "agency": "Mã cơ quan",
    "indicator": "Chỉ tiêu",
    "label": "Nhóm mục tiêu",
    "target": "Mục tiêu",
    "estimate": "Ước lượng",
    "se": "Sai số chuẩn",
    "n": "Số phiếu hợp lệ",
    "lower": "Cận dưới một phía 95%",
    "upper": "Cận trên một phía 95%",
    "verdict": "Đánh giá",
    "design_effect": "Hệ số thiết kế (n / n hiệu dụng)",
    "n_eff_needed": "Cỡ mẫu hiệu dụng cần để kết luận",
    "n_needed": "Số phiếu cần để kết luận",
}
INDICATOR_TEXT = {"satisfaction": "Tỷ lệ hài lòng (%)", "survey_points": "Tổng điểm điều tra XHH"}
CRITERIA_HEADERS = {
    "agency": "Mã cơ quan",
    "agency_name": "Tên cơ quan",
    "agency_kind": "Loại cơ quan",
    "criterion": "Mã lĩnh vực",
    "criterion_name": "Lĩnh vực",
    "max_points": "Điểm tối đa",
    "score": "Mức đạt (0-1)",
    "points": "Điểm",
    "points_se": "Sai số chuẩn điểm",
    "points_ci_lo": "Điểm: cận dưới KTC 95%",
    "points_ci_hi": "Điểm: cận trên KTC 95%",
    "n": "Số phiếu hợp lệ",
    "n_eff": "Cỡ mẫu hiệu dụng",
    "df": "Bậc tự do",
    "n_groups": "Số nhóm đối tượng đủ điều kiện",
    "tltc": "Tỷ lệ đánh giá tích cực (%)",
    "flag": "Cảnh báo",
    "reliability": "Lý do độ tin cậy thấp",
    "missing_groups": "Nhóm đối tượng thiếu",
}
CELL_HEADERS = {
    "stratum": "Ô mẫu (tầng)",
    "form": "Mẫu phiếu",
    "cell_agency": "Cơ quan hoặc đơn vị của ô mẫu",
    "respondents": "Số người trả lời được công bố",
    "population": "Tổng thể (staff_counts.csv)",
    "fraction": "Tỷ lệ chọn mẫu (0: không hiệu chỉnh tổng thể hữu hạn)",
}
ITEM_HEADERS = {
    "agency": "Mã cơ quan",
    "group": "Mẫu phiếu",
    "item": "Mã câu hỏi",
    "criterion": "Mã lĩnh vực",
    "scale": "Thang đo",
    "n_responses": "Số phiếu của nhóm",
    "n_valid": "Số câu trả lời có điểm",
    "mean_value": "Điểm trung bình (0-1)",
    "positive_pct": "Tỷ lệ tích cực (%)",
}
WEIGHT_HEADERS = {
    "agency": "Mã cơ quan",
    "criterion": "Mã lĩnh vực",
    "n": "Số phiếu có trọng số",
    "sum": "Tổng trọng số",
    "min": "Trọng số nhỏ nhất",
    "median": "Trọng số trung vị",
    "max": "Trọng số lớn nhất",
    "n_eff": "Cỡ mẫu hiệu dụng (Kish)",
    "deff_w": "Hệ số thiết kế do trọng số",
}
SETTINGS_HEADERS = {"setting": "Thiết lập", "value": "Giá trị"}
COUNT_PREFIX = "Số chọn"
SUPPRESSED_NOTE = "Ẩn (nhóm dưới {n} người trả lời về cơ quan này)"


#: Decimals shown in the workbook per column (the cells keep full precision); other columns are text.
DECIMALS = {
    **dict.fromkeys(["n", "n_responses", "n_valid", "n_groups", "rank", "rank_lo", "rank_hi", "n_eff_needed",
                     "n_needed", "df", "survey_points_df", "satisfaction_df", "n_same", "rank_same", "rank_same_lo",
                     "rank_same_hi", "respondents", "population"], 0),
    **dict.fromkeys(["satisfaction", "satisfaction_ci_lo", "satisfaction_ci_hi", "tltc", "positive_pct", "n_eff",
                     "n_eff_min"], 1),
    **dict.fromkeys(["survey_points", "survey_points_ci_lo", "survey_points_ci_hi", "points", "points_ci_lo",
                     "points_ci_hi", "max_points", "satisfaction_se", "satisfaction_target", "survey_points_target",
                     "target", "estimate", "se", "lower", "upper", "design_effect"], 2),
    **dict.fromkeys(["survey_points_se", "points_se", "score", "mean_value", "sum", "min", "median", "max",
                     "deff_w", "fraction"], 3),
}


def _column_decimals(headers: dict[str, str], frame: pd.DataFrame) -> dict[str, int]:
    """Decimals per shown column, by the source column's name; option counts are whole numbers."""
    shown = {header: DECIMALS.get(key, 2) for key, header in headers.items()
             if key in DECIMALS or key.startswith("points_")}  # points_A1 …: the points of one PAR area
    shown.update({c: 0 for c in frame.columns if str(c).startswith(COUNT_PREFIX)})
    return shown


class ExportError(ServiceError):
    """An output that cannot be written (unknown format); the message says why."""


def export(results: RoundResults, path: str | Path) -> Path:
    """Write the results in the format given by the file extension (.xlsx, .csv or .sav)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        write_xlsx(results, path)
    elif suffix == ".csv":
        write_csv(results, path)
    elif suffix == ".sav":
        write_sav(results, path)
    else:
        raise ExportError(f"Không hỗ trợ định dạng '{path.suffix}'; dùng một trong: {', '.join(FORMATS)}.")
    return path


SIMULATED_NOTE = ("DỮ LIỆU MÔ PHỎNG: các phiếu của đợt này do máy sinh ra để trình diễn, không phải ý kiến "
                  "của người trả lời thật; không dùng để đánh giá cơ quan nào.")


def provenance_lines(results: RoundResults) -> list[tuple[str, str]]:
    p = results.provenance
    return [
        *([("Dữ liệu mô phỏng", SIMULATED_NOTE)] if p.get("simulated") else []),
        ("Đợt khảo sát", p["round"]),
        ("Mã băm cấu hình phương pháp (SHA-256)", p["methodology_hash"]),
        ("Phiên bản phiếu khảo sát", "; ".join(f"{form}: {', '.join(v)}"
                                               for form, v in p["questionnaire_versions"].items())),
        ("Phiên bản phần mềm", p["software_version"]),
        ("Tính cả phiếu vượt chỉ tiêu", "có" if p["surplus_in_analysis"] else "không"),
        ("Số phiếu được tính", number(p["counts"].get("responses", 0))),
        ("Số cặp phiếu × cơ quan không hợp lệ (trả lời quá ít)",
         number(p["counts"].get("invalid_response_agency_pairs", 0))),
        *((PARAMETER_LABELS.get(key, key), _parameter_text(key, value))
          for key, value in p["analysis_parameters"].items()),
    ]


#: The analysis parameters of the provenance, one readable row each.
PARAMETER_LABELS = {
    "confidence_level": "Mức tin cậy của khoảng tin cậy",
    "rounding": "Cách làm tròn",
    "rank_draws": "Số lần mô phỏng khoảng xếp hạng",
    "rank_seed": "Hạt giống ngẫu nhiên của mô phỏng xếp hạng",
    "min_breakdown": "Số phiếu tối thiểu của một nhóm để có số liệu riêng",
}
ROUNDING_TEXT = {
    "half away from zero on the decimal value, 2 dp; total rounded once":
        "làm tròn 0,5 ra xa số 0 trên giá trị thập phân, 2 chữ số sau dấu phẩy; "
        "tổng điểm chỉ làm tròn một lần",
}


def _parameter_text(key: str, value) -> str:
    if key == "confidence_level":
        return percent(float(value) * 100, 0)
    if key == "rounding":
        return ROUNDING_TEXT.get(value, str(value))
    if key == "rank_seed":
        return str(value)  # an identifier, not a quantity
    return number(value) if isinstance(value, (int, float)) else str(value)


def summary_headers(results: RoundResults) -> dict[str, str]:
    """Source column → header of the summary, with one "Điểm A1" … column per PAR area."""
    points = [c for c in results.summary.columns if c.startswith("points_")]
    return {**SUMMARY_HEADERS, **{c: f"Điểm {c.removeprefix('points_')}" for c in points}}


def summary_frame(results: RoundResults) -> pd.DataFrame:
    """The per-agency table with Vietnamese headers and labels (also the CSV export)."""
    headers = summary_headers(results)
    out = results.summary[list(headers)].copy()
    out["agency_kind"] = out["agency_kind"].map(results.kind_labels)
    labels = flag_labels(results)
    out["flags"] = out["flags"].map(lambda f: _flag_text(f, labels))
    for col in ("survey_points_reliability", "satisfaction_reliability"):
        out[col] = out[col].map(lambda f: _flag_text(f, REASON_LABELS) if isinstance(f, str) else None)
    for col in ("satisfaction_verdict", "survey_points_verdict"):
        out[col] = out[col].map(lambda v: VERDICTS.get(v, ""))
    return out.rename(columns=headers)


def targets_frame(results: RoundResults) -> pd.DataFrame:
    """Every agency × indicator with a target: the bounds the verdict is read from and the sample it needs."""
    out = results.targets.reindex(columns=list(TARGET_HEADERS)).copy()
    out["indicator"] = out["indicator"].map(INDICATOR_TEXT)
    out["verdict"] = out["verdict"].map(lambda v: VERDICTS.get(v, ""))
    return out.rename(columns=TARGET_HEADERS)


def _flag_text(flags: str, labels: dict[str, str]) -> str:
    return "; ".join(labels.get(f, f) for f in str(flags).split(",") if f)


def criteria_frame(results: RoundResults) -> pd.DataFrame:
    out = results.criteria[list(CRITERIA_HEADERS)].copy()
    out["agency_kind"] = out["agency_kind"].map(results.kind_labels)
    labels = flag_labels(results)
    out["flag"] = out["flag"].map(lambda f: _flag_text(f, labels))
    out["reliability"] = out["reliability"].map(lambda f: _flag_text(f, REASON_LABELS))
    return out.rename(columns=CRITERIA_HEADERS)


def items_frame(results: RoundResults) -> pd.DataFrame:
    """Item distributions: one column per option code (count), suppressed groups noted."""
    items = results.items
    codes = sorted({c for s in results.scales.values() for c in s.codes})
    out = items[list(ITEM_HEADERS)].copy()
    for code in codes:
        out[f"{COUNT_PREFIX} '{code}'"] = [None if c is None else c.get(code, 0) for c in items["counts"]]
    threshold = results.provenance["analysis_parameters"]["min_breakdown"]
    # a hidden group's size is not given either: "fewer than the threshold" is all it says, and no count
    out["n_responses"] = out["n_responses"].astype(object).where(~items["suppressed"], f"< {threshold}")
    out["n_valid"] = out["n_valid"].astype(object).where(~items["suppressed"], None)
    out["Ghi chú"] = np.where(items["suppressed"], SUPPRESSED_NOTE.format(n=threshold), "")
    return out.rename(columns=ITEM_HEADERS)


def write_xlsx(results: RoundResults, path: Path) -> None:
    """One sheet per table; a simulated round's file opens on a sheet that says so."""
    simulated = ({"Dữ liệu mô phỏng": (pd.DataFrame({SIMULATED_NOTE: []}), {})}
                 if results.provenance.get("simulated") else {})
    sheets = {
        **simulated,
        "Tổng hợp": (summary_frame(results), summary_headers(results)),
        "Theo lĩnh vực": (criteria_frame(results), CRITERIA_HEADERS),
        "Theo câu hỏi": (items_frame(results), ITEM_HEADERS),
        "Ô mẫu": (results.cells[list(CELL_HEADERS)].rename(columns=CELL_HEADERS), CELL_HEADERS),
        "Chẩn đoán trọng số": (results.weights.rename(columns=WEIGHT_HEADERS), WEIGHT_HEADERS),
        "Mục tiêu": (targets_frame(results), TARGET_HEADERS),
        "Thiết lập phương pháp": (results.settings.rename(columns=SETTINGS_HEADERS), {}),
        "Nguồn gốc số liệu": (pd.DataFrame(provenance_lines(results), columns=["Thông tin", "Giá trị"]), {}),
    }
    with pd.ExcelWriter(path, engine="xlsxwriter", engine_kwargs={"options": tabular.XLSX_OPTIONS}) as writer:
        bold = writer.book.add_format({"bold": True, "text_wrap": True, "valign": "top"})
        formats = {d: writer.book.add_format({"num_format": xlsx_format(d)}) for d in set(DECIMALS.values())}
        for name, (frame, headers) in sheets.items():
            name = name[:SHEET_NAME_MAX]
            frame.to_excel(writer, sheet_name=name, index=False)
            ws = writer.sheets[name]
            decimals = _column_decimals(headers, frame)
            for j, col in enumerate(frame.columns):
                ws.write(0, j, col, bold)
                ws.set_column(j, j, min(40, max(10, len(str(col)) // 2 + 4)))
                if col in decimals:  # a cell's own format is what Excel shows, not its column's
                    for i, value in enumerate(frame[col].tolist(), start=1):
                        if isinstance(value, (int, float, np.number)) and not pd.isna(value):
                            ws.write_number(i, j, value, formats[decimals[col]])
            ws.freeze_panes(1, 0)


def provenance_path(path: str | Path) -> Path:
    """The sidecar of a CSV export: ``results.csv`` -> ``results.provenance.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.provenance.json")


def write_provenance(results: RoundResults, path: str | Path) -> Path:
    """The provenance of the numbers as JSON (UTF-8), with the labels of the workbook's sheet."""
    out = provenance_path(path)
    data = {"data_file": Path(path).name, **results.provenance,
            "labels": dict(provenance_lines(results))}
    out.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return out


#: first column of every row of a CSV of a simulated round, so the label travels with the table
SIMULATED_COLUMN = ("Dữ liệu mô phỏng", "DỮ LIỆU MÔ PHỎNG")


def _labelled(results: RoundResults, frame: pd.DataFrame) -> pd.DataFrame:
    if not results.provenance.get("simulated"):
        return frame
    return frame.assign(**{SIMULATED_COLUMN[0]: SIMULATED_COLUMN[1]})[[SIMULATED_COLUMN[0], *frame.columns]]


def write_csv(results: RoundResults, path: Path) -> None:
    """The summary table; UTF-8 with BOM so Excel shows Vietnamese; the provenance in the sidecar."""
    tabular.csv_frame(_labelled(results, summary_frame(results))).to_csv(
        path, index=False, lineterminator="\n", encoding="utf-8-sig")
    write_provenance(results, path)


#: The tidy answers file's columns, in order: the answer, then every design variable an analyst needs to
#: rebuild the published tables (docs/results.md, "Reproducing the tables").
ANSWER_COLUMNS = ["response_uid", "response_id", "group", "channel", "agency", "agency_kind", "stratum", "cell_agency",
                  "population", "sampling_fraction", "item", "criterion", "max_points", "scale", "option", "value",
                  "positive", "group_weight", "group_share", "satisfaction_share", "weight"]
#: Labels of the design variables, in the .sav (and in docs/results.md).
DESIGN_LABELS = {
    "agency_kind": "Loại cơ quan được đánh giá",
    "stratum": "Ô mẫu (tầng): mẫu phiếu/cơ quan hoặc đơn vị",
    "cell_agency": "Cơ quan hoặc đơn vị của ô mẫu",
    "population": "Tổng thể của ô mẫu (số công chức, staff_counts.csv); trống nếu không biết",
    "sampling_fraction": "Tỷ lệ chọn mẫu của ô mẫu dùng cho hiệu chỉnh tổng thể hữu hạn (0: không hiệu chỉnh)",
    "group_weight": "Trọng số của nhóm đối tượng (methodology.yaml)",
}


def answers_frame(results: RoundResults) -> pd.DataFrame:
    """The published answers with every design variable: the answers of groups under ``min_breakdown`` are left
    out, as from every figure and from the design of the variance; the sampling cell's fraction is the one the
    variance used."""
    answers = small_groups_removed(results.answers, results.provenance["analysis_parameters"]["min_breakdown"])[0]
    cells = results.cells.set_index("stratum")
    # categorical columns: each look-up maps the few categories, not the millions of rows
    stratum = answers["stratum"]
    points = results.max_points.assign(key=results.max_points["agency_kind"] + "|" + results.max_points["criterion"])
    key = answers["agency_kind"].astype("category").str.cat(answers["criterion"].astype("category"), sep="|")
    out = answers.assign(cell_agency=stratum.map(cells["cell_agency"]).astype(object).fillna(""),
                         sampling_fraction=stratum.map(cells["fraction"]).astype(float),
                         max_points=key.map(points.set_index("key")["max_points"]).astype(float))
    return out[ANSWER_COLUMNS]


def write_answers_csv(results: RoundResults, path: str | Path) -> Path:
    """The tidy long file: one row per published answer with its value, weight (S = Σ weight·value) and every
    design variable; beside it ``<name>.items.csv`` (item → criterion, scale), ``<name>.cells.csv`` (the
    sampling cells: respondents, population, sampling fraction), ``<name>.criteria.csv`` (the maximum points of
    each criterion per agency kind) and the provenance sidecar.

    The answers of every group (form × agency rated) with fewer respondents than the round's ``min_breakdown``
    are left out, as on every page, in every other export and in every figure.
    """
    path = Path(path)
    csv = {"index": False, "lineterminator": "\n", "float_format": "%.17g", "encoding": "utf-8-sig"}
    tabular.csv_frame(_labelled(results, answers_frame(results))).to_csv(path, **csv)
    tabular.csv_frame(results.item_map).to_csv(path.with_name(f"{path.stem}.items.csv"), **csv)
    tabular.csv_frame(results.cells).to_csv(path.with_name(f"{path.stem}.cells.csv"), **csv)
    tabular.csv_frame(results.max_points).to_csv(path.with_name(f"{path.stem}.criteria.csv"), **csv)
    write_provenance(results, path)
    return path


def small_groups_removed(answers: pd.DataFrame, min_group: int) -> tuple[pd.DataFrame, list[tuple[tuple, int]]]:
    """The answers without those of groups (form × agency) of fewer than ``min_group`` respondents, and the
    groups left out with their number of answers."""
    keys = ["group", "agency"]
    sizes = answers.groupby(keys, observed=True)["response_id"].transform("nunique")
    small = sizes < min_group
    left_out = answers[small].groupby(keys, observed=True).size()
    return answers[~small], list(left_out.items())


def write_sav(results: RoundResults, path: Path) -> None:
    """One case per agency: every estimate with its SE and interval, ASCII variable names, Vietnamese
    variable labels, measurement levels (nominal codes, ordinal ranks, scale estimates), value labels
    for the kind and the reliability flags, the provenance in the file label and notes."""
    import pyreadstat

    s = results.summary
    points = [c for c in s.columns if c.startswith("points_")]
    sav_kinds = {kind: n for n, kind in enumerate(results.kind_labels, start=1)}  # 1, 2, ... in round order
    frame = pd.DataFrame({
        "agency": s["agency"].astype(str),
        "agency_name": s["agency_name"].astype(str),
        "kind": s["agency_kind"].map(sav_kinds).astype(float),
    })
    numeric = ["survey_points", "survey_points_se", "survey_points_ci_lo", "survey_points_ci_hi", "max_points",
               "satisfaction", "satisfaction_se", "satisfaction_ci_lo", "satisfaction_ci_hi", "tltc", "n", "n_eff_min",
               "rank", "rank_lo", "rank_hi", *points]
    for col in numeric:
        frame[_sav_name(col)] = pd.to_numeric(s[col], errors="coerce").astype(float)
    labels = {"agency": "Mã cơ quan", "agency_name": "Tên cơ quan", "kind": "Loại cơ quan"}
    labels.update({_sav_name(c): SUMMARY_HEADERS.get(c, f"Điểm {c.removeprefix('points_')}") for c in numeric})
    # the SE and interval of every criterion's points, beside its points
    crit = results.criteria.set_index(["agency", "criterion"])
    for col, what in (("points_se", "sai số chuẩn"), ("points_ci_lo", "cận dưới KTC 95%"),
                      ("points_ci_hi", "cận trên KTC 95%")):
        wide = crit[col].unstack("criterion")
        for c in wide.columns:
            name = f"points_{c}_{col.removeprefix('points_').replace('ci_', '')}"
            frame[name] = s["agency"].map(wide[c]).astype(float).to_numpy()
            labels[name] = f"Điểm {c}: {what}"
    flag_codes = {"": 0, **{f: i for i, f in enumerate(FLAG_LABELS, 1)}}
    for flag, code in flag_codes.items():
        if flag:
            frame[f"flag{code}"] = s["flags"].map(lambda v, f=flag: float(f in str(v).split(",")))
    flag_text = flag_labels(results)
    labels.update({f"flag{code}": f"Cảnh báo: {flag_text[flag]}"
                   for flag, code in flag_codes.items() if flag})
    # the three target answers as codes 1-3 with value labels (empty: no target or no estimate)
    verdict_codes = {v: float(i) for i, v in enumerate(VERDICTS, 1)}
    for col in ("satisfaction_verdict", "survey_points_verdict"):
        frame[_sav_name(col)] = s[col].map(verdict_codes).astype(float)
        labels[_sav_name(col)] = SUMMARY_HEADERS[col]
    value_labels = {"kind": {float(v): results.kind_labels[k] for k, v in sav_kinds.items()}}
    value_labels.update({_sav_name(col): {code: VERDICTS[v] for v, code in verdict_codes.items()}
                         for col in ("satisfaction_verdict", "survey_points_verdict")})
    value_labels.update({f"flag{code}": {0.0: "Không", 1.0: "Có"} for flag, code in flag_codes.items() if flag})
    measure = {c: "scale" for c in frame.columns}
    measure.update({c: "nominal"
                    for c in ("agency", "agency_name", "kind", *[c for c in frame if c.startswith("flag")])})
    measure.update({c: "ordinal" for c in ("rank", "rank_lo", "rank_hi")})
    measure.update({_sav_name(c): "nominal" for c in ("satisfaction_verdict", "survey_points_verdict")})
    whole = ["kind", "n", "rank", "rank_lo", "rank_hi", *[c for c in frame if c.startswith("flag")],
             *[_sav_name(c) for c in ("satisfaction_verdict", "survey_points_verdict")]]
    p = results.provenance
    pyreadstat.write_sav(
        frame, str(path), column_labels=labels, variable_value_labels=value_labels, variable_measure=measure,
        variable_format={c: SAV_CODE_FORMAT for c in whole}, file_label=_sav_file_label(p),
        note=_sav_notes(p),
    )


#: numeric code of "không biết / không đánh giá" in the response-level file (declared missing)
SAV_EXCLUDED_CODE = 9.0
#: numeric code of an item of the response's form left blank (item nonresponse, declared missing): not "K"
SAV_BLANK_CODE = 8.0
SAV_BLANK_LABEL = "Không trả lời (để trống)"
#: SPSS print format of whole numbers (codes, counts, ranks): without the default two decimals
SAV_CODE_FORMAT = "F8.0"
SAV_LABEL_BYTES = 255


def write_responses_sav(results: RoundResults, path: str | Path) -> Path:
    """One case per published response × agency rated, one variable per item with its answer code, value labels
    from the answer scales ("K" coded 9, an item of the form left blank coded 8, both declared missing), and every
    design variable: the sampling cell
    (stratum) with its agency or LĐ-CP district, population and sampling fraction, the agency kind, the group's
    weight and its share of each criterion (``share_A1`` …) and of satisfaction. An item's label names its
    criterion ("[A1] I01. …"), so the file alone maps items to criteria.

    The groups that are never broken down (fewer respondents of a form about an agency than the round's
    ``min_breakdown``) are left out, as on every page, in every table and in the design of the variance.
    """
    import pyreadstat

    path = Path(path)
    a = answers_frame(results)
    unit = ["response_uid", "agency"]
    cols = {c: a[c].astype(str) for c in ("response_uid", "agency", "group", "channel", "item", "scale", "criterion")}
    cols["form"] = cols.pop("group")  # the .sav's variable name, labelled "Mẫu phiếu"
    long = pd.DataFrame({**cols, "option": a["option"].astype(object)})
    codes = long["option"].map(lambda o: np.nan if o is None or o != o else
                               SAV_EXCLUDED_CODE if not str(o).isdigit() else float(o))
    wide = long.assign(code=codes).pivot_table(index=["response_uid", "agency", "form", "channel"], columns="item",
                                               values="code", aggfunc="first", dropna=False, observed=True)
    wide = wide.dropna(how="all").reset_index()
    items = [c for c in wide.columns if c not in ("response_uid", "agency", "form", "channel")]
    # a blank is an item of the response's form without an answer; items of other forms stay system-missing
    form_items = long.groupby("form", observed=True)["item"].unique()
    for form, its in form_items.items():
        rows = wide["form"] == form
        wide.loc[rows, list(its)] = wide.loc[rows, list(its)].fillna(SAV_BLANK_CODE)
    # the design variables of each response × agency, and the group's share of each criterion and of satisfaction
    keyed = a.assign(response_uid=cols["response_uid"], agency=cols["agency"])
    design = keyed.groupby(unit, sort=False).agg(
        agency_kind=("agency_kind", "first"), stratum=("stratum", "first"), cell_agency=("cell_agency", "first"),
        population=("population", "first"), sampling_fraction=("sampling_fraction", "first"),
        group_weight=("group_weight", "first"), share_satisfaction=("satisfaction_share", "max"))
    shares = keyed.pivot_table(index=unit, columns="criterion", values="group_share", aggfunc="max", observed=True)
    shares.columns = [f"share_{c}" for c in shares.columns]
    frame = wide.join(design.astype({c: str for c in ("agency_kind", "stratum", "cell_agency")}), on=unit)
    frame = frame.join(shares, on=unit).rename(columns={"response_uid": "response"})
    scale_of = long.drop_duplicates("item").set_index("item")["scale"]
    criterion_of = long.drop_duplicates("item").set_index("item")["criterion"]
    value_labels, missing = {}, {}
    for item in items:
        scale = results.scales.get(scale_of.get(item))
        if scale is None:
            continue
        value_labels[item] = {SAV_EXCLUDED_CODE if opt.excluded else float(opt.code): opt.label
                              for opt in scale.options}
        value_labels[item][SAV_BLANK_CODE] = SAV_BLANK_LABEL
        missing[item] = [SAV_BLANK_CODE, SAV_EXCLUDED_CODE]
    labels = {"response": "Mã phiếu (ngẫu nhiên)", "agency": "Mã cơ quan được đánh giá", "form": "Mẫu phiếu",
              "channel": "Kênh", **DESIGN_LABELS,
              "share_satisfaction": "Phần của nhóm trong tỷ lệ hài lòng của cơ quan (0: nhóm không được tính)"}
    labels.update({c: f"Phần của nhóm trong điểm lĩnh vực {c.removeprefix('share_')} (0: nhóm không được tính)"
                   for c in shares.columns})
    # an item's label is its criterion and question (SPSS keeps at most 256 bytes of a label)
    labels.update({item: _utf8_cut(f"[{criterion_of[item]}] {item}. {results.item_texts.get(item, '')}".rstrip(),
                                   SAV_LABEL_BYTES) for item in items})
    value_labels["agency_kind"] = dict(results.kind_labels)
    measure = {c: "nominal" for c in ("response", "agency", "form", "channel", "agency_kind", "stratum",
                                      "cell_agency")}
    measure.update({item: "ordinal" for item in items})
    measure.update({c: "scale" for c in frame.columns if c not in measure})
    p = results.provenance
    pyreadstat.write_sav(frame, str(path), column_labels=labels, variable_value_labels=value_labels,
                         missing_ranges=missing, variable_measure=measure,
                         variable_format={item: SAV_CODE_FORMAT for item in items},
                         file_label=_sav_file_label(p), note=_sav_notes(p))
    return path


def _sav_file_label(p: dict) -> str:
    label = f"{p['round']} {p['methodology_hash'][:12]} v{p['software_version']}"
    return _utf8_cut(f"{SIMULATED_COLUMN[1]} {label}" if p.get("simulated") else label, 64)


def _utf8_cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-8 bytes, cut between letters (SPSS counts bytes, not letters)."""
    if len(text.encode()) <= limit:
        return text
    while len((text + "…").encode()) > limit:
        text = text[:-1]
    return text.rstrip() + "…"


def _sav_notes(p: dict) -> list[str]:
    """The provenance as SPSS document lines (at most 80 bytes each)."""
    lines = [*(["DỮ LIỆU MÔ PHỎNG: phiếu do máy sinh, không phải ý kiến thật"]
               if p.get("simulated") else []),
             f"round: {p['round']}", "methodology sha256:", p["methodology_hash"],
             f"software version: {p['software_version']}",
             f"surplus in analysis: {'yes' if p['surplus_in_analysis'] else 'no'}",
             f"responses counted: {p['counts'].get('responses', 0)}"]
    lines += [f"questionnaire {form}: {', '.join(v)}" for form, v in p["questionnaire_versions"].items()]
    lines += [f"{k}: {v}" for k, v in p["analysis_parameters"].items()]
    return lines


def _sav_name(col: str) -> str:
    """SPSS variable names: at most 64 bytes, ASCII, starting with a letter."""
    return col.replace("survey_points", "sp")

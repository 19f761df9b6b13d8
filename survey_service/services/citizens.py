"""A citizens' round's results: its released responses read into the frame :mod:`analysis.citizens` counts,
with the round's populations, satisfied options, targets and the investigators phúc tra quarantined; the
response rates per agency; and the tables written as CSV or XLSX with Vietnamese headings.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis import citizens as analysis
from analysis.targets import VERDICTS
from survey_service.models import (
    Agency, Answer, Ballot, InvitationCode, QuotaCell, ReceiptCode, Response, Round, Sheet, SheetState,
)
from survey_service.services import ballots, frames, phuctra, rounds
from survey_service.services.errors import ServiceError
from survey_service.services.exports import SIMULATED_COLUMN, SIMULATED_NOTE


class CitizensError(ServiceError):
    """Results asked of a round that is not a citizens' round, or written to an unknown format."""


@dataclass(frozen=True)
class CitizenReport:
    """What the results page and the exports show: the shares, improvements and response rates with
    names and labels, the counts left out, and the definition of the indices."""

    round_code: str
    simulated: bool
    definition: str
    definition_note: str
    shares: pd.DataFrame
    improvements: pd.DataFrame
    rates: pd.DataFrame
    excluded: dict[str, int]
    quarantined: tuple[str, ...]
    waiting: int
    #: Phúc tra so far: respondents re-contacted who confirmed the fieldwork, of those reached.
    confirmed: int = 0
    reached: int = 0

    @property
    def pass_rate(self) -> float | None:
        return self.confirmed / self.reached if self.reached else None


def _frame(session: Session, rnd: Round, items: list[str]) -> pd.DataFrame:
    """One row per released response: its agency, kind, quota cell, channel, investigator, household's commune
    and the answers to ``items``."""
    responses = pd.DataFrame(session.execute(
        sa.select(Response.id, Agency.code, Agency.kind, Response.quota_cell_id, Response.channel,
                  Response.investigator, Response.commune)
        .join(Agency, Agency.id == Response.agency_id).where(Response.round_id == rnd.id)).all(),
        columns=["id", "agency", "kind", "cell", "channel", "investigator", "commune"])
    answers = pd.DataFrame(session.execute(
        sa.select(Answer.response_id, Answer.item_code, Answer.value).join(Response, Response.id == Answer.response_id)
        .where(Response.round_id == rnd.id, Answer.item_code.in_(items))).all(),
        columns=["id", "item", "value"])
    wide = answers.pivot(index="id", columns="item", values="value") if len(answers) else pd.DataFrame()
    frame = responses.set_index("id").join(wide.reindex(columns=items))
    frame["channel"] = [getattr(c, "value", c) for c in frame["channel"]]
    return frame.reset_index(drop=True)


def _options(session: Session, rnd: Round, items: list[str]) -> tuple[dict, dict, dict]:
    """Per item: satisfied option codes, excluded codes and option labels, from the round's forms (the
    forms of a citizens' round share their items, checked at load)."""
    form = rounds.questionnaire_for(session, rnd, sorted(f.form_code for f in rnd.forms)[0])
    satisfied, excluded, labels = {}, {}, {}
    for code in items:
        scale = form.scales[form.item(code).scale]
        satisfied[code] = list(scale.positive_codes)
        excluded[code] = list(scale.excluded_codes)
        labels[code] = {o.code: o.label for o in scale.options}
    return satisfied, excluded, labels


def _per_agency(session: Session, rnd: Round, table, *where) -> dict[str, int]:
    return dict(session.execute(
        sa.select(Agency.code, sa.func.count()).select_from(table)
        .join(QuotaCell, QuotaCell.id == table.quota_cell_id).join(Agency, Agency.id == QuotaCell.agency_id)
        .where(QuotaCell.round_id == rnd.id, *where).group_by(Agency.code)).all())


def response_rates(session: Session, rnd: Round) -> pd.DataFrame:
    """Per agency: sheets handed out (not void) plus codes issued (receipt and invitation codes), and
    respondents (released responses and ballots still sealed)."""
    issued: dict[str, int] = {}
    returned: dict[str, int] = {}
    for table, where, into in ((Sheet, (Sheet.state != SheetState.VOID,), issued), (ReceiptCode, (), issued),
                               (InvitationCode, (), issued), (Response, (), returned), (Ballot, (), returned)):
        for agency, count in _per_agency(session, rnd, table, *where).items():
            into[agency] = into.get(agency, 0) + count
    return analysis.response_rates(issued, returned)


def quarantined(session: Session, rnd: Round) -> set[str]:
    """The investigators whose sheets phúc tra keeps out of the index pending review."""
    return phuctra.quarantined_investigators(session, rnd.id)


def pools_out(session: Session, rnd: Round, quarantined: set[str]) -> set[int]:
    """The quota cells whose responses pooled under ``*`` may hold a ``quarantined`` investigator's sheets: the
    ledger counts more of their keyed sheets in the cell than responses naming them there and ballots still
    waiting (the rest were pooled). Nothing is known of which pooled responses are theirs, so the whole pool
    of such a cell is left out."""
    if not quarantined:
        return set()
    keyed = (sa.select(Sheet.quota_cell_id, Sheet.investigator, sa.func.count())
             .join(QuotaCell, QuotaCell.id == Sheet.quota_cell_id)
             .where(QuotaCell.round_id == rnd.id, Sheet.investigator.in_(quarantined),
                    Sheet.state.in_((SheetState.KEYED, SheetState.VERIFIED)))
             .group_by(Sheet.quota_cell_id, Sheet.investigator))
    named = (sa.select(Response.quota_cell_id, Response.investigator,
                       sa.func.count(sa.distinct(Response.respondent_key)))
             .where(Response.round_id == rnd.id, Response.investigator.in_(quarantined))
             .group_by(Response.quota_cell_id, Response.investigator))
    waiting = (sa.select(Ballot.quota_cell_id, Ballot.investigator, sa.func.count())
               .join(QuotaCell, QuotaCell.id == Ballot.quota_cell_id)
               .where(QuotaCell.round_id == rnd.id, Ballot.investigator.in_(quarantined))
               .group_by(Ballot.quota_cell_id, Ballot.investigator))
    seen: dict[tuple[int, str], int] = {}
    for query in (named, waiting):
        for cell_id, name, count in session.execute(query):
            seen[cell_id, name] = seen.get((cell_id, name), 0) + count
    return {cell_id for cell_id, name, count in session.execute(keyed) if count > seen.get((cell_id, name), 0)}


def populations(session: Session, rnd: Round) -> dict[str, float]:
    """Each agency's population ``N`` of the weight ``N / n``: from the round's drawn sampling frames where an
    agency has cells there (a commune drawn by PPS counts its households over its chance of being drawn),
    else from populations.csv."""
    drawn: dict[str, float] = {}
    for cell in frames.cell_weights(session, rnd.id):
        drawn[cell["agency"]] = drawn.get(cell["agency"], 0.0) + cell["weight"] * cell["sample"]
    return {**{a: p["population"] for a, p in rnd.methodology["populations"].items()}, **drawn}


def measure_names(rnd: Round) -> dict[str, str]:
    """Each measure's name: the elements' (criteria.yaml) and the overall item's."""
    return {e["code"]: e["name"] for e in rnd.methodology["elements"]} | {analysis.OVERALL: "Hài lòng chung"}


def levels(rnd: Round) -> list[tuple[str, str]]:
    """The levels of the shares table with their headings, in the order pages and reports show them."""
    return [("province", f"Toàn {rnd.province_title}"), ("kind", "Theo loại cơ quan"), ("agency", "Theo cơ quan"),
            ("commune", "Theo xã, phường nơi hộ gia đình cư trú")]


def report(session: Session, rnd: Round, *, quarantined: set[str] = frozenset()) -> CitizenReport:
    """The round's results, leaving out the responses of ``quarantined`` investigators.

    :raises CitizensError: not a citizens' round.
    """
    if not rounds.is_citizens(rnd):
        raise CitizensError(f"Đợt {rnd.code} không phải đợt khảo sát người dân.", 404)
    m = rnd.methodology
    elements = [(e["code"], e["satisfaction"]) for e in m["elements"]]
    items = sorted({i for _, i in elements} | {m["overall"], m["screening"]["item"], *m["improvements"]})
    satisfied, excluded, labels = _options(session, rnd, items)
    frame = _frame(session, rnd, items)
    sizes = populations(session, rnd)
    counted = frame[frame[m["screening"]["item"]].isin(m["screening"]["eligible"])].groupby("agency").size()
    over = sorted(a for a, n in counted.items() if n > sizes.get(a, 0))
    if over:
        raise CitizensError(f"Số người trả lời của {', '.join(over)} vượt quá số người trong khung mẫu "
                            "(populations.csv hoặc khung mẫu đã chọn): hãy sửa số liệu khung mẫu.", 422)
    res = analysis.citizen_results(
        frame, populations=sizes, elements=elements,
        overall=m["overall"], satisfied=satisfied, excluded_options=excluded, improvements=m["improvements"],
        screening=m["screening"]["item"], eligible=m["screening"]["eligible"], quarantined=set(quarantined),
        pools_out=pools_out(session, rnd, set(quarantined)),
        targets=rnd.structure.get("targets", []), min_group=ballots.min_group(rnd.settings))
    names = dict(session.execute(sa.select(Agency.code, Agency.name).where(Agency.round_id == rnd.id)).all())
    kinds = {k["code"]: k["plural"] for k in rnd.structure["kinds"]}
    measures = measure_names(rnd)
    unit = f"{rnd.structure.get('province_type', 'tỉnh')} {rnd.province}"

    def named(table: pd.DataFrame) -> pd.DataFrame:
        table = table.copy()
        table.insert(1, "domain_name", [unit if lvl == "province" else kinds.get(d, d) if lvl == "kind"
                                        else names.get(d, d) for lvl, d in zip(table["level"], table["domain"],
                                                                                strict=True)])
        return table

    shares = named(res.shares)
    shares.insert(3, "measure_name", shares["measure"].map(measures))
    improvements = named(res.improvements)
    improvement_labels = labels[m["improvements"][0]]
    improvements.insert(3, "option_name", improvements["option"].map(improvement_labels))
    rates = response_rates(session, rnd)
    rates.insert(1, "agency_name", rates["agency"].map(names))
    return CitizenReport(rnd.code, rnd.simulated, m["definition"], m["definition_note"], shares, improvements,
                         rates, res.excluded, tuple(sorted(quarantined)), ballots.waiting_count(session, rnd.id),
                         *phuctra.pass_rate(session, rnd.id))


#: Vietnamese headings of the exported tables.
_HEADINGS = {
    "level": "Cấp", "domain": "Mã", "domain_name": "Tên", "measure": "Mã chỉ số", "measure_name": "Chỉ số",
    "est": "Tỷ lệ hài lòng", "se": "Sai số chuẩn", "ci_lo": "Cận dưới KTC 95%", "ci_hi": "Cận trên KTC 95%",
    "n": "Số câu trả lời hợp lệ", "withheld": "Không công bố (dưới ngưỡng)", "target": "Mục tiêu",
    "verdict": "Đánh giá so với mục tiêu", "option": "Mã nội dung", "option_name": "Nội dung cần cải thiện",
    "agency": "Mã cơ quan", "agency_name": "Cơ quan", "issued": "Số phiếu/mã đã phát",
    "returned": "Số người đã trả lời", "rate": "Tỷ lệ phản hồi",
}


def tables(rep: CitizenReport) -> dict[str, pd.DataFrame]:
    """The exported tables under their sheet names, headings in Vietnamese; a simulated round's rows say so."""
    shares = rep.shares.assign(verdict=rep.shares["verdict"].map(VERDICTS))
    notes = pd.DataFrame({"Mục": ["Định nghĩa chỉ số", "Phiếu không tính: không thuộc đối tượng",
                                  "Phiếu không tính: điều tra viên bị tạm loại sau phúc tra",
                                  "Điều tra viên bị tạm loại", "Phiếu còn niêm phong chờ đưa vào kết quả",
                                  "Phúc tra: số người xác nhận / số người liên lạc được"],
                          "Giá trị": [rep.definition_note, rep.excluded["screened_out"], rep.excluded["quarantined"],
                                      ", ".join(rep.quarantined) or "không có", rep.waiting,
                                      f"{rep.confirmed}/{rep.reached}"]})
    out = {"Ty le hai long": shares, "Noi dung cai thien": rep.improvements, "Ty le phan hoi": rep.rates,
           "Ghi chu": notes}
    out = {name: frame.rename(columns=_HEADINGS) for name, frame in out.items()}
    if rep.simulated:
        out = {name: frame.assign(**{SIMULATED_COLUMN[0]: SIMULATED_COLUMN[1]})[[SIMULATED_COLUMN[0], *frame.columns]]
               for name, frame in out.items()}
    return out


def export(rep: CitizenReport, path: str | Path) -> Path:
    """Write the tables: .xlsx (one sheet each, a simulated round's first sheet says so) or .csv (the shares;
    the other tables beside it, named ``<stem>-<table>.csv``)."""
    path = Path(path)
    frames = tables(rep)
    if path.suffix.lower() == ".xlsx":
        with pd.ExcelWriter(path) as writer:
            if rep.simulated:
                pd.DataFrame({SIMULATED_NOTE: []}).to_excel(writer, sheet_name="Du lieu mo phong", index=False)
            for name, frame in frames.items():
                frame.to_excel(writer, sheet_name=name, index=False)
    elif path.suffix.lower() == ".csv":
        first, *rest = frames.items()
        first[1].to_csv(path, index=False, encoding="utf-8-sig")
        for name, frame in rest:
            frame.to_csv(path.with_name(f"{path.stem}-{name.lower().replace(' ', '-')}.csv"), index=False,
                         encoding="utf-8-sig")
    else:
        raise CitizensError(f"Không hỗ trợ định dạng '{path.suffix}'; dùng .xlsx hoặc .csv.", 400)
    return path

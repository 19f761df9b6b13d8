"""Progress figures per cell: they match the tables after a mixed run, the dashboard's query count does not
grow with agencies or responses, and filters, sorting and Vietnamese order work."""
import re
from datetime import date

import pytest
import sqlalchemy as sa

from survey_service.services import progress
from survey_service.services.progress import FIGURES, Filters
from survey_service.vietnamese import sort_key
from tests.progress_data import cell, expected_figures, make_round, mixed_run, respond

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def rnd(session):
    rnd = make_round(session)
    mixed_run(session, rnd)
    session.commit()
    return rnd


def figures_of(c) -> dict:
    return {name: getattr(c.figures, name) for name in FIGURES}


def test_every_figure_matches_the_tables(session, rnd):
    expected = expected_figures(session, rnd)
    data = progress.round_progress(session, rnd)
    assert {c.cell_id: figures_of(c) for c in data.cells} == expected
    # The mixed run exercises every rule with a non-zero figure.
    by_key = {(c.form_code, c.agency_code): figures_of(c) for c in data.cells}
    assert by_key[("CC-CT", "SNV")] == dict(target=5, verified=3, keyed=0, started=2, issued=0, surplus=0,
                                            shortfall=2)
    assert by_key[("CC-CT", "STC")]["surplus"] == 2 and by_key[("CC-CT", "STC")]["shortfall"] == 0
    assert by_key[("LĐ-CP", "DLO")]["verified"] == 2  # 2 respondents, 4 responses
    assert by_key[("HĐ-CT", None)] == dict(target=5, verified=2, keyed=1, started=0, issued=3, surplus=0,
                                           shortfall=3)
    assert by_key[("LĐS-CT", "TKY")] == dict(target=5, verified=2, keyed=0, started=0, issued=1, surplus=1,
                                             shortfall=3)


def test_imported_paper_responses_count_as_verified_like_in_the_analysis(session, rnd):
    tky = cell(session, rnd, "LĐS-CT", "TKY")
    before = figures_of(next(c for c in progress.round_progress(session, rnd).cells if c.cell_id == tky.id))
    respond(session, tky)  # a paper response imported from a CSV has no sheet
    session.commit()
    after = figures_of(next(c for c in progress.round_progress(session, rnd).cells if c.cell_id == tky.id))
    assert after["verified"] == before["verified"] + 1 and after["keyed"] == before["keyed"]
    assert {c.cell_id: figures_of(c) for c in progress.round_progress(session, rnd).cells} == \
        expected_figures(session, rnd)


def test_totals_are_sums_of_their_cells(session, rnd):
    data = progress.round_progress(session, rnd)
    for name in FIGURES:
        assert getattr(data.total, name) == sum(getattr(c.figures, name) for c in data.cells)
        for form, fig in data.by_form.items():
            assert getattr(fig, name) == sum(getattr(c.figures, name) for c in data.cells if c.form_code == form)
        for kind, fig in data.by_kind.items():
            assert getattr(fig, name) == sum(getattr(c.figures, name) for c in data.cells if c.kind == kind)
        for channel, fig in data.by_channel.items():
            assert getattr(fig, name) == sum(getattr(c.figures, name) for c in data.cells if c.channel == channel)
    assert set(data.by_channel) == {"online", "paper"}
    assert data.last_response_on == date(2025, 10, 4)


def test_filters_keep_only_matching_cells(session, rnd):
    data = progress.round_progress(session, rnd, Filters(kind="district", channel="online"))
    assert data.cells and all(c.kind == "district" and c.channel == "online" for c in data.cells)
    assert {c.form_code for c in data.cells} == {"CC-CH", "LĐ-CP"}
    only_matrix = progress.round_progress(session, rnd, Filters(kind="matrix"))
    assert [c.form_code for c in only_matrix.cells] == ["HĐ-CT"]
    assert progress.round_progress(session, rnd, Filters(form="LĐS-CT")).total.verified == 2


def test_agencies_in_vietnamese_order_and_sort_by_shortfall(session, rnd):
    names = [c.agency_name for c in progress.round_progress(session, rnd, Filters(form="CC-CH")).cells]
    assert names == ["Duy Xuyên", "Đại Lộc", "Tam Kỳ"]
    assert names == sorted(names, key=sort_key)
    by_shortfall = progress.round_progress(session, rnd, Filters(sort="shortfall")).cells
    shortfalls = [c.figures.shortfall for c in by_shortfall]
    assert shortfalls == sorted(shortfalls, reverse=True)


def test_bad_filters_are_refused():
    forms, kinds = {"CC-CT": "x"}, ["department", "commune", progress.MATRIX]
    with pytest.raises(progress.FilterError):
        progress.parse_filters({"kind": "district"}, forms, kinds)  # not a kind of this round
    with pytest.raises(progress.FilterError):
        progress.parse_filters({"form": "XX"}, forms, kinds)
    with pytest.raises(progress.FilterError):
        progress.parse_filters({"sort": "random"}, forms, kinds)
    assert progress.parse_filters({"form": "CC-CT", "sort": ""}, forms, kinds) == Filters(form="CC-CT")
    assert progress.parse_filters({"kind": "commune"}, forms, kinds) == Filters(kind="commune")


def test_daily_counts_per_channel(session, rnd):
    daily = progress.daily_counts(session, rnd)
    as_dict = {(d, ch): n for d, ch, n in daily}
    assert as_dict[(date(2025, 10, 3), "online")] == 8  # 7 for STC, 1 for SNV
    assert as_dict[(date(2025, 10, 4), "online")] == 2  # LĐ-CP respondents, not their 4 responses
    assert as_dict[(date(2025, 10, 2), "paper")] == 5  # keyed sheets: HĐ-CT 2 verified + 1 keyed, LĐS-CT 2
    assert progress.daily_counts(session, rnd, Filters(channel="paper")) == [(date(2025, 10, 2), "paper", 5)]


# --- query count -----------------------------------------------------------------------------------
class QueryCounter:
    def __init__(self, engine):
        self.engine, self.count = engine, 0

    def _count(self, *args):
        self.count += 1

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, "before_cursor_execute", self._count)


def dashboard_queries(app, client, round_code: str) -> int:
    with QueryCounter(app.extensions["db_engine"]) as counter:
        for path in ("", "/progress.json", "/curve.svg"):
            response = client.get(f"/staff/progress/{round_code}{path}")
            assert response.status_code == 200, path
    return counter.count


def test_dashboard_query_count_does_not_grow(app, session, staff_client):
    client = staff_client("supervisor")
    small = make_round(session, "SMALL")
    session.commit()
    baseline = dashboard_queries(app, client, "SMALL")

    big = make_round(session, "BIG", extra_agencies=60)
    mixed_run(session, big)
    for agency_cell in session.scalars(sa.select(progress.QuotaCell).where(
            progress.QuotaCell.round_id == big.id, progress.QuotaCell.form_code == "CC-CT")).all():
        for day in (1, 2, 3):
            respond(session, agency_cell, day=date(2025, 10, day))
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(progress.Response)) > 200
    assert dashboard_queries(app, client, "BIG") == baseline
    assert small is not None


def test_dashboard_figures_in_the_page_match(app, session, rnd, staff_client):
    client = staff_client("supervisor")
    html = client.get(f"/staff/progress/{rnd.code}").get_data(as_text=True)
    shown = {}
    for cell_id, name, value in re.findall(r'data-cell="(\d+)" data-figure="(\w+)">([\d.]*)<', html):
        if name in FIGURES:
            shown.setdefault(int(cell_id), {})[name] = int(value.replace(".", ""))
    assert shown == expected_figures(session, rnd)
    live = client.get(f"/staff/progress/{rnd.code}/progress.json").get_json()
    assert {c["cell_id"]: {n: c[n] for n in FIGURES} for c in live["cells"]} == expected_figures(session, rnd)
    assert re.match(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$", live["updated"])
    assert cell(session, rnd, "CC-CH", "DXU").soft_closed

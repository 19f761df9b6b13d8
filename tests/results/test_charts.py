"""The ranking chart as a reader sees it: round ticks with a decimal comma, the simulated-data stamp clear
of the title and the axis."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from survey_service.web import charts


def _summary(n: int, low: float, high: float) -> pd.DataFrame:
    points = np.linspace(high, low, n)
    return pd.DataFrame({
        "agency": [f"A{i:02d}" for i in range(n)],
        "agency_name": [f"Sở số {i} tỉnh Hưng Yên" for i in range(n)],
        "survey_points": points, "survey_points_ci_lo": points - 2.4, "survey_points_ci_hi": points + 1.9,
        "rank": range(1, n + 1), "rank_lo": range(1, n + 1), "rank_hi": range(2, n + 2),
    })


def _tick_labels(fig) -> list[str]:
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    return [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]


def test_ranking_ticks_are_round_numbers():
    labels = _tick_labels(charts.ranking_figure(_summary(20, 14.2, 25.3), "QNA-2023 — Sở, ban, ngành"))
    assert labels and all(label.isdigit() and int(label) % 5 == 0 for label in labels), labels
    close = _summary(5, 20.1, 20.6).assign(survey_points_ci_lo=lambda f: f["survey_points"] - 0.1,
                                           survey_points_ci_hi=lambda f: f["survey_points"] + 0.1)
    narrow = _tick_labels(charts.ranking_figure(close, "QNA-2023 — Sở, ban, ngành"))
    assert any("," in label for label in narrow) and not any("." in label for label in narrow), narrow


def test_simulated_stamp_clear_of_the_title():
    title = "DNG-2026-SIM — Sở, ban, ngành và cơ quan ngành dọc trên địa bàn thành phố"
    fig = charts.ranking_figure(_summary(12, 12.5, 27.5), title)
    charts._stamp(fig)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    heading_text = next(t for t in fig.findobj(Text) if t.get_text() == title)
    heading = heading_text.get_window_extent(renderer)
    stamps = [t for t in fig.texts if t.get_text() == charts.SIMULATED_MARK]
    small = min(stamps, key=lambda t: t.get_fontsize()).get_window_extent(renderer)
    assert not heading.overlaps(small)
    assert all(not small.overlaps(t.get_window_extent(renderer)) for t in fig.axes[0].get_xticklabels())
    for text in [heading_text, fig.axes[0].xaxis.label, *stamps]:  # all inside the image
        box = text.get_window_extent(renderer)
        assert box.y0 >= 0 and box.y1 <= fig.bbox.y1 and box.x1 <= fig.bbox.x1


def test_ranking_png_of_simulated_data_is_taller_by_the_stamp_strip():
    summary = _summary(6, 15, 25)
    real = Image.open(io.BytesIO(charts.ranking_png(summary, "QNA-2023 — Sở")))
    simulated = Image.open(io.BytesIO(charts.ranking_png(summary, "QNA-2023 — Sở", simulated=True)))
    assert simulated.width == real.width and simulated.height == real.height + round(charts.STAMP_STRIP * 100)

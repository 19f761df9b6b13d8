"""Server-side charts (matplotlib's object API with the Agg canvas; pyplot's global state is not
thread-safe under threaded servers). Each function returns PNG bytes."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import FuncFormatter, MaxNLocator



SIMULATED_MARK = "DỮ LIỆU MÔ PHỎNG"
#: Height (inches) of the strip under a chart of simulated data that holds its small stamp.
STAMP_STRIP = 0.3


def _png(fig: Figure, simulated: bool = False) -> bytes:
    """The figure as PNG; a chart of simulated data carries the words across it."""
    if simulated:
        _stamp(fig)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _stamp(fig: Figure) -> None:
    """The words across the chart, and once more in a strip added under it, away from the title."""
    height = fig.get_figheight()
    fig.set_figheight(height + STAMP_STRIP)
    bottom = STAMP_STRIP / (height + STAMP_STRIP)
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(rect=(0, bottom, 1, 1 - bottom))
    else:
        fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.text(0.5, (1 + bottom) / 2, SIMULATED_MARK, fontsize=40, color="#b8860b", alpha=0.25, ha="center",
             va="center", rotation=20, fontweight="bold")
    fig.text(0.99, bottom / 2, SIMULATED_MARK, fontsize=9, color="#8a6500", ha="right", va="center",
             fontweight="bold")


def _vietnamese_ticks(axis) -> None:
    """Ticks at round steps (1, 2, 5 or 10 times a power of ten, never 2.5) written with a decimal comma."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}".replace(".", ",").replace("-", "\u2212")))


def ranking_png(summary: pd.DataFrame, title: str, *, simulated: bool = False) -> bytes:
    """Survey points of one agency kind with their 95% CI, best first, labelled with the rank interval."""
    return _png(ranking_figure(summary, title), simulated)


def ranking_figure(summary: pd.DataFrame, title: str) -> Figure:
    rows = summary[summary["survey_points"].notna()].sort_values(["rank", "agency"])
    fig = Figure(figsize=(8, 0.35 * max(len(rows), 3) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    # The point is published rounded and the interval is not: a zero-width interval can sit a hair off it.
    lo = rows["survey_points"] - rows["survey_points_ci_lo"]
    hi = rows["survey_points_ci_hi"] - rows["survey_points"]
    ax.errorbar(rows["survey_points"], y, xerr=[lo.fillna(0).clip(lower=0), hi.fillna(0).clip(lower=0)], fmt="o",
                color="#0b4f9c", ecolor="#7f9fc6", capsize=3)
    ax.set_yticks(y, [f"{r.agency_name} — hạng {r.rank} ({r.rank_lo}–{r.rank_hi})" for r in rows.itertuples()],
                  fontsize=8)
    _vietnamese_ticks(ax.xaxis)
    ax.set_xlabel("Tổng điểm điều tra XHH (khoảng tin cậy 95%)")
    fig.suptitle(title, fontsize=10)  # over the whole width: a long title does not run off the image
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


#: From the best option to the worst (by coefficient); "không biết" and blank are grey.
GOOD_TO_BAD = ["#2166ac", "#67a9cf", "#d1e5f0", "#fddbc7", "#ef8a62", "#b2182b"]
EXCLUDED_COLOUR, BLANK_COLOUR = "#bdbdbd", "#f0f0f0"


def option_colours(scale) -> dict[str, str]:
    """Colour per option code of one scale: rated options from blue (best) to red (worst), K grey."""
    rated = sorted((o for o in scale.options if not o.excluded), key=lambda o: -o.coefficient)
    picks = np.linspace(0, len(GOOD_TO_BAD) - 1, num=max(len(rated), 2)).round().astype(int)
    colours = {o.code: GOOD_TO_BAD[i] for o, i in zip(rated, picks)}
    colours.update({o.code: EXCLUDED_COLOUR for o in scale.options if o.excluded})
    return colours


def items_png(items: pd.DataFrame, title: str, *, scales: dict, groups: dict[str, str],
              simulated: bool = False) -> bytes:
    """Share of each option per item: one panel per respondent group (form) and scale, its legend naming
    the scale's options. Groups below the anonymity threshold are left out."""
    shown = items[~items["suppressed"]]
    panels: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for row in shown.itertuples():
        bucket = panels.setdefault((row.group, row.scale), {}).setdefault(row.item, {})
        for code, count in (row.counts or {}).items():
            bucket[code] = bucket.get(code, 0) + count
    keys = sorted(panels)
    # Room per panel: its bars, or its legend (one line per option) when that is taller.
    heights = [max(len(panels[k]), 0.6 * (len(scales[k[1]].options) + 1)) + 1.2 for k in keys] or [3]
    fig = Figure(figsize=(8, 0.3 * sum(heights) + 0.8), layout="constrained")
    fig.suptitle(title, fontsize=11)
    axes = fig.subplots(len(keys) or 1, 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, key in zip(axes, keys):
        _item_panel(ax, panels[key], scales[key[1]], f"{key[0]} – {groups.get(key[0], key[0])}")
    if keys:
        axes[-1].set_xlabel("Tỷ lệ các phương án trả lời (%)", fontsize=8)
    else:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "Không có câu trả lời được hiển thị", ha="center", va="center")
    return _png(fig, simulated)


def _item_panel(ax, totals: dict[str, dict[str, int]], scale, heading: str) -> None:
    colours = option_colours(scale)
    names = sorted(totals)
    y = np.arange(len(names))[::-1]
    left = np.zeros(len(names))
    denominators = np.maximum([sum(totals[n].values()) for n in names], 1)
    options = [(o.code, o.label) for o in scale.options] + [("", "Để trống")]
    for code, label in options:
        counts = np.array([totals[n].get(code, 0) for n in names], dtype=float)
        if not counts.any():
            continue
        ax.barh(y, 100 * counts / denominators, left=left, color=colours.get(code, BLANK_COLOUR),
                label=f"{code} = {label}" if code else label, edgecolor="white")
        left += 100 * counts / denominators
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(heading, fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)

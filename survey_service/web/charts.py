"""Server-side charts (matplotlib's object API with the Agg canvas; pyplot's global state is not
thread-safe under threaded servers). Each function returns PNG bytes."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

OPTION_COLOURS = {"1": "#b2182b", "2": "#ef8a62", "3": "#d1e5f0" , "4": "#67a9cf", "5": "#2166ac", "K": "#bdbdbd",
                  "": "#f0f0f0"}


SIMULATED_MARK = "DỮ LIỆU MÔ PHỎNG"


def _png(fig: Figure, simulated: bool = False) -> bytes:
    """The figure as PNG; a chart of simulated data carries the words across it."""
    if simulated:
        fig.text(0.5, 0.5, SIMULATED_MARK, fontsize=40, color="#b8860b", alpha=0.25, ha="center", va="center",
                 rotation=20, fontweight="bold")
        fig.text(0.99, 0.99, SIMULATED_MARK, fontsize=9, color="#8a6500", ha="right", va="top", fontweight="bold")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def ranking_png(summary: pd.DataFrame, title: str, *, simulated: bool = False) -> bytes:
    """Survey points of one agency kind with their 95% CI, best first, labelled with the rank interval."""
    rows = summary[summary["survey_points"].notna()].sort_values(["rank", "agency"])
    fig = Figure(figsize=(8, 0.35 * max(len(rows), 3) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    # The point is published rounded and the interval is not: a zero-width interval can sit a hair off it.
    lo = rows["survey_points"] - rows["survey_points_ci_lo"]
    hi = rows["survey_points_ci_hi"] - rows["survey_points"]
    ax.errorbar(rows["survey_points"], y, xerr=[lo.fillna(0).clip(lower=0), hi.fillna(0).clip(lower=0)], fmt="o", color="#0b4f9c",
                ecolor="#7f9fc6", capsize=3)
    ax.set_yticks(y, [f"{r.agency_name} — hạng {r.rank} ({r.rank_lo}–{r.rank_hi})" for r in rows.itertuples()],
                  fontsize=8)
    ax.set_xlabel("Tổng điểm điều tra XHH (khoảng tin cậy 95%)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig, simulated)


def items_png(items: pd.DataFrame, title: str, *, simulated: bool = False) -> bytes:
    """Share of each option per item (groups below the anonymity threshold are left out)."""
    shown = items[~items["suppressed"]]
    totals: dict[str, dict[str, int]] = {}
    for row in shown.itertuples():
        bucket = totals.setdefault(row.item, {})
        for code, count in (row.counts or {}).items():
            bucket[code] = bucket.get(code, 0) + count
    codes = [c for c in OPTION_COLOURS if any(c in t for t in totals.values())]
    names = sorted(totals)
    fig = Figure(figsize=(8, 0.3 * max(len(names), 3) + 1.4))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    left = np.zeros(len(names))
    for code in codes:
        counts = np.array([totals[n].get(code, 0) for n in names], dtype=float)
        share = 100 * counts / np.maximum([sum(totals[n].values()) for n in names], 1)
        ax.barh(y, share, left=left, color=OPTION_COLOURS[code], label=code or "trống", edgecolor="white")
        left += share
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("Tỷ lệ các phương án trả lời (%)")
    ax.set_title(title, fontsize=10)
    if codes:
        ax.legend(ncol=len(codes), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / max(len(names), 3)))
    fig.tight_layout()
    return _png(fig, simulated)

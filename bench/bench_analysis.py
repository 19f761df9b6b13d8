"""End-to-end benchmark of the analysis library on synthetic survey data.

Usage: .venv/bin/python bench/bench_analysis.py [--rows N] [--subset M] [--seed S] [--before DIR]

Synthesises N responses (43 agencies, 8 forms, 20 items each; long answers frame of 20·N rows with
integer response ids, categorical code columns and the 20 answers of a response consecutive, which is
the input the service hands to score_round), then times: scoring (score_round, including
design-based SEs), raking of the respondent weights to three population margins (Design.rake), and
domain means with calibration-aware standard errors for the 20 items (Design.mean); the same-run
baseline is the fixed-weight domain_means of the same weights. On the first M rows raking and
estimation are compared with svy 0.35 (time and numbers) when it is installed. Prints wall and CPU
time per stage, peak memory and a markdown table.

``--before DIR`` first runs the same stages, in a process of its own, with the ``analysis`` package
of DIR (an export of an earlier commit: ``git archive COMMIT | tar -x -C DIR``), prints its times
beside these and checks that every frame of score_round and the estimates are equal to the last bit.
CPU time is the figure to compare on a shared machine; the load average is printed with it.
"""
from __future__ import annotations

import argparse
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# the analysis package measured: this repository's, or DIR's when run as the child of --before DIR
sys.path.insert(0, os.environ.get("BENCH_ANALYSIS_FROM") or str(Path(__file__).resolve().parent.parent))

from analysis import Design, domain_means, score_round  # noqa: E402

FORMS = {"CC-CT": "department", "LĐ-CP": "department", "LĐH-CH": "department", "CC-CH": "district",
         "LĐX-CH": "district", "LĐS-CT": "district", "CC-ND": "vertical", "HĐ-CT": None}
KINDS = {"department": 20, "district": 18, "vertical": 5}
CRITERIA = [f"A{i}" for i in range(1, 9)]
SETTINGS = {
    "coefficients": {"DG4": "linear", "HL5": "linear", "TS4": "linear"},
    "max_points": {k: dict(zip(CRITERIA, [4, 3, 4, 3, 5, 3, 4, 4])) for k in KINDS},
    "group_weights": {"department": {"CC-CT": .30, "LĐ-CP": .25, "LĐH-CH": .25, "HĐ-CT": .20},
                      "district": {"CC-CH": .30, "LĐX-CH": .25, "LĐS-CT": .25, "HĐ-CT": .20},
                      "vertical": {"CC-ND": .40, "LĐH-CH": .35, "HĐ-CT": .25}},
    "min_respondents": {"CC-CT": 3, "LĐ-CP": 3, "LĐH-CH": 1, "CC-CH": 3, "LĐX-CH": 3, "LĐS-CT": 1,
                        "CC-ND": 3, "HĐ-CT": 1},
    "satisfaction_scale": "HL5",
    "positive": {"DG4": ["3", "4"], "HL5": ["4", "5"], "TS4": ["3", "4"]},
}
SCALES = {"DG4": ["1", "2", "3", "4"], "TS4": ["1", "2", "3", "4"], "HL5": ["1", "2", "3", "4", "5"]}


def synthesise(n: int, seed: int):
    rng = np.random.default_rng(seed)
    agencies = [(f"{k[:3].upper()}{i:02d}", k) for k, m in KINDS.items() for i in range(m)]
    ag_kind = np.array([KINDS_INDEX[k] for _, k in agencies])
    forms = list(FORMS)
    form = rng.integers(0, len(forms), n)
    # each form targets agencies of its kind (HĐ-CT: any)
    agency = np.empty(n, dtype=np.int64)
    for f, kind in enumerate(FORMS.values()):
        idx = np.flatnonzero(form == f)
        pool = np.arange(len(agencies)) if kind is None else np.flatnonzero(ag_kind == KINDS_INDEX[kind])
        agency[idx] = rng.choice(pool, idx.size)
    # 20 items per form: item j of form f is "F{f}Q{j}"; criteria cycle A1..A8; item 19 HL5, item 18 TS4
    items = pd.DataFrame([(f"F{f}Q{j:02d}", "HL5" if j == 19 else "TS4" if j == 18 else "DG4", CRITERIA[j % 8])
                          for f in range(len(forms)) for j in range(20)], columns=["item", "scale", "criterion"])
    n_items = 20
    item_code = (np.repeat(form, n_items) * n_items + np.tile(np.arange(n_items), n))
    quality = rng.normal(0, 0.6, len(agencies))[agency]
    opt = np.clip(np.round(2.8 + np.repeat(quality, n_items) + rng.normal(0, 0.9, n * n_items)), 1, 4)
    opt = opt.astype(np.int64)
    is_hl5 = np.tile(np.arange(n_items) == 19, n)
    opt[is_hl5] = np.clip(opt[is_hl5] + rng.integers(0, 2, is_hl5.sum()), 1, 5)
    opt_codes = opt - 1  # categories "1".."5"
    opt_codes[rng.random(opt.size) < 0.05] = 5  # "K"
    answers = pd.DataFrame({
        "response_id": np.repeat(np.arange(n, dtype=np.int32), n_items),
        "agency": pd.Categorical.from_codes(np.repeat(agency, n_items), [a for a, _ in agencies]),
        "agency_kind": pd.Categorical.from_codes(np.repeat(ag_kind[agency], n_items), list(KINDS)),
        "group": pd.Categorical.from_codes(np.repeat(form, n_items), forms),
        "item": pd.Categorical.from_codes(item_code, list(items["item"])),
        "option": pd.Categorical.from_codes(opt_codes, ["1", "2", "3", "4", "5", "K"]),
    })
    return answers, items, rng


KINDS_INDEX = {k: i for i, k in enumerate(KINDS)}


def wide_items(answers: pd.DataFrame, n: int) -> pd.DataFrame:
    """1 row per response, 20 item-position columns with the linear item value (NaN for K)."""
    codes = answers["option"].cat.codes.to_numpy().reshape(n, 20).astype(float)
    hl5 = np.zeros(20, dtype=bool)
    hl5[19] = True
    vals = np.where(codes == 5, np.nan, np.where(hl5, codes / 4, codes / 3))
    frame = pd.DataFrame(vals, columns=[f"q{j:02d}" for j in range(20)])
    frame["response_id"] = np.arange(n)
    frame["agency"] = answers["agency"].iloc[::20].to_numpy()
    frame["group"] = answers["group"].iloc[::20].to_numpy()
    return frame


def elapsed(t: float, c: float) -> tuple[float, float]:
    """Wall and process CPU time since perf_counter() == t and process_time() == c."""
    return time.perf_counter() - t, time.process_time() - c


def run_stages(n: int, seed: int) -> dict:
    """Synthesise, score, rake and estimate; the times (wall, CPU) per stage, peak memory and outputs."""
    times: dict[str, tuple[float, float]] = {}
    t, c = time.perf_counter(), time.process_time()
    answers, items, rng = synthesise(n, seed)
    times["synthesise (not part of the library)"] = elapsed(t, c)

    t, c = time.perf_counter(), time.process_time()
    result = score_round(answers, items=items, scales=SCALES, settings=SETTINGS)
    times["scoring: score_round (points, TLHL, TLTC, SEs)"] = elapsed(t, c)

    wide = wide_items(answers, n)
    del answers
    wide["channel"] = rng.integers(0, 2, n)
    wide["w0"] = 1.0
    # population margins: proportional to the sample with a perturbation, common total 2n
    margins = {}
    for col in ("agency", "group", "channel"):
        counts = wide[col].value_counts(sort=False).astype(float)
        counts *= rng.uniform(0.8, 1.2, len(counts))
        margins[col] = counts / counts.sum() * 2 * n
    qcols = [f"q{j:02d}" for j in range(20)]
    t, c = time.perf_counter(), time.process_time()
    design = Design(wide, weight="w0", strata="group").rake(margins)
    times["weighting: rake to 3 margins (Design.rake)"] = elapsed(t, c)

    t, c = time.perf_counter(), time.process_time()
    est = design.mean(qcols, by="agency")
    times["estimation: calibration-aware means 43 agencies x 20 items"] = elapsed(t, c)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"times": times, "peak_gb": peak_gb, "result": result, "est": est, "wide": wide, "design": design,
            "margins": margins, "qcols": qcols}


def print_times(title: str, run: dict) -> None:
    times = run["times"]
    total = sum(v for k, (v, _) in times.items() if not k.startswith("synth"))
    total_cpu = sum(v for k, (_, v) in times.items() if not k.startswith("synth"))
    print(f"\n{title}\n")
    # CPU time (all threads of this process) next to wall time: on a shared machine the wall time
    # also counts the time other processes hold the cores
    print("| stage | wall time (s) | CPU time (s) |")
    print("|---|---|---|")
    for k, (v, cpu) in times.items():
        print(f"| {k} | {v:.3f} | {cpu:.3f} |")
    print(f"| **library total (scoring + raking + estimation)** | **{total:.3f}** | **{total_cpu:.3f}** |")
    print(f"\npeak memory (ru_maxrss): {run['peak_gb']:.2f} GB; load average {os.getloadavg()[0]:.1f}")


def outputs(run: dict) -> dict:
    """Every frame the stages publish, for the equality check against another version."""
    res = run["result"]
    return {**{f"score_round.{f}": getattr(res, f) for f in res.__dataclass_fields__}, "Design.mean": run["est"]}


def unequal(before: dict, now: dict) -> list[str]:
    """Names of the frames that differ in any bit (values, dtypes, labels)."""
    bad = []
    for name, frame in before.items():
        try:
            pd.testing.assert_frame_equal(frame, now[name], check_exact=True)
        except (AssertionError, KeyError):
            bad.append(name)
    return bad


#: ``--short``: small sizes, a few seconds; the test suite runs it so that a broken benchmark fails.
SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="number of responses")
    parser.add_argument("--subset", type=int, default=50_000, help="rows for the svy comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    parser.add_argument("--before", type=Path, help="also measure the analysis package exported into this directory")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # write this process's run to a file
    args = parser.parse_args()
    if args.short:
        args.rows, args.subset = 20_000, 2_000
    n = args.rows
    if args.child:
        run = run_stages(n, args.seed)
        with open(args.child, "wb") as f:
            pickle.dump({"times": run["times"], "peak_gb": run["peak_gb"], "outputs": outputs(run)}, f)
        return
    before = None
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "before.pkl"
            subprocess.run([sys.executable, __file__, "--rows", str(n), "--seed", str(args.seed), "--child", str(out)],
                           env={**os.environ, "BENCH_ANALYSIS_FROM": str(args.before.resolve())}, check=True)
            with open(out, "rb") as f:
                before = pickle.load(f)
        print_times(f"## before ({args.before}): {n:,} responses x 20 items ({20 * n:,} answers)", before)

    run = run_stages(n, args.seed)
    result, est, wide, design, qcols = run["result"], run["est"], run["wide"], run["design"], run["qcols"]
    # same run baseline: the fixed-weight SEs of the same raked weights
    t = time.perf_counter()
    fixed = domain_means(wide.assign(w=design.weights.to_numpy()), qcols, "agency", "w", strata="group")
    t_fixed = time.perf_counter() - t
    print_times(f"## analysis benchmark: {n:,} responses x 20 items ({20 * n:,} answers)", run)
    ratio = (fixed["se"].to_numpy() / est.sort_values(["agency", "variable"])["se"].to_numpy())
    print(f"agencies scored: {len(result.totals)}, flagged values: {len(result.flags)}, "
          f"estimate rows: {len(est)}; baseline fixed-weight domain_means {t_fixed:.3f} s, "
          f"fixed / calibrated SE: median {np.median(ratio):.3f}")
    if before is not None:
        bad = unequal(before["outputs"], outputs(run))
        print(f"equal to the last bit to the version before: {'yes' if not bad else 'NO: ' + ', '.join(bad)}")
    # complete rows only: svy drops rows with a missing value, which would change its strata sizes
    compare_with_svy(wide.iloc[: args.subset].dropna(subset=qcols).reset_index(drop=True), run["margins"], qcols)


def compare_with_svy(sub: pd.DataFrame, margins: dict, qcols: list) -> None:
    """Rake the subset to the margins' shares and compare means and SEs with svy 0.35."""
    try:
        import polars as pl
        import svy
    except ImportError:
        print("\nsvy not installed (pip install -e '.[test]'): comparison skipped")
        return
    # the margins' shares, on the subset's categories, to a common total of twice its rows
    sub_margins = {c: m[m.index.isin(sub[c].unique())] for c, m in margins.items()}
    sub_margins = {c: m / m.sum() * 2 * len(sub) for c, m in sub_margins.items()}
    t = time.perf_counter()
    ours = Design(sub, weight="w0", strata="group").rake(sub_margins).mean(qcols, by="agency")
    t_ours = time.perf_counter() - t
    frame = pl.from_pandas(sub.assign(agency=sub["agency"].astype(str), group=sub["group"].astype(str),
                                      channel=sub["channel"].astype(str)))
    controls = {c: {str(k): float(v) for k, v in m.items()} for c, m in sub_margins.items()}
    t = time.perf_counter()
    sample = svy.Sample(data=frame, design=svy.Design(stratum="group", wgt="w0"))
    sample = sample.weighting.rake(controls=controls, tol=1e-10, max_iter=1000)
    theirs = sample.estimation.mean(qcols, by="agency")
    t_svy = time.perf_counter() - t
    worst = 0.0
    for q, e in zip(qcols, theirs):
        tt = e.to_polars().to_pandas().set_index("agency")
        mine = ours[ours["variable"] == q].assign(agency=lambda f: f["agency"].astype(str)).set_index("agency")
        for col in ("est", "se"):
            worst = max(worst, float(np.max(np.abs(mine[col] - tt.loc[mine.index, col])
                                            / np.abs(tt.loc[mine.index, col]))))
    print(f"\n### svy 0.35 cross-check on {len(sub):,} complete rows of the first ones: rake to 3 margins, "
          "20 items x 43 agencies\n")
    print("| implementation | time (s) |")
    print("|---|---|")
    print(f"| analysis.Design rake + mean | {t_ours:.3f} |")
    print(f"| svy 0.35 rake + estimation.mean | {t_svy:.3f} |")
    print(f"\nlargest relative difference (est, se): {worst:.2e} -> {'OK' if worst < 1e-6 else 'MISMATCH'}")
    if worst >= 1e-6:
        sys.exit(1)


if __name__ == "__main__":
    main()

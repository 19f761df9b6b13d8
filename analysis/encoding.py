"""The answers as integer codes: item × option cells, scoring units, and per-unit sums in two passes.

Tens of millions of answers are never grouped on strings: every answer becomes one cell code of the
item × option table (:class:`_Cells`), every response × target one unit code found from runs of rows
(:class:`_Units`), and :func:`_unit_tables` adds up everything the scoring needs per unit with
``np.bincount``. The input conventions (categoricals, consecutive rows per response) are in
:mod:`analysis.scoring`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from analysis._checks import require_columns, require_frame
from analysis.settings import _Config

__all__ = ["ANSWER_COLUMNS", "item_values"]

ANSWER_COLUMNS = ["response_id", "agency", "agency_kind", "group", "item", "option"]
#: Rows handled at a time in the passes over the answers: the working arrays (a few MB) stay in the
#: cache and are reused, where arrays of every row would each cost fresh memory.
ROW_CHUNK = 1 << 20


def _codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 = missing) and categories of a column, cheap for categoricals.

    Categorical codes keep their compact dtype (int8 for up to 127 categories) to save memory on
    tens of millions of rows; callers widen them before any arithmetic that could overflow.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), pd.Index(series.cat.categories)
    codes, uniq = pd.factorize(series)
    return np.asarray(codes), pd.Index(uniq)


@dataclass(frozen=True)
class _Cells:
    """Every answer as one integer: its cell in the item × option table (built by :func:`_answer_cells`).

    A row's cell is ``item_code * n_cols + option column`` where the last option column
    (``n_cols - 1``) stands for a missing option. Per-cell look-up tables (value, criterion,
    positive, ...) then turn into per-row arrays with a single ``take``, with no string work and no
    two-dimensional fancy indexing over the rows. The cell codes are made a slice of rows at a time
    (:meth:`codes`) from the columns' compact category codes: a 20M-row array of them would cost
    more in fresh memory than all the arithmetic on it.
    """

    item_code: np.ndarray     # per row: item category code (compact dtype, no missing)
    opt_code: np.ndarray      # per row: option category code (compact dtype, -1 = missing)
    item_cats: pd.Index       # item codes (categories of the item column)
    opt_cats: pd.Index        # option codes (categories of the option column)
    scale_names: list[str]    # sorted scales of the items present
    scale_of_item: np.ndarray  # scale index of every item category
    value: np.ndarray         # per cell: coefficient, NaN for blank/excluded options

    @property
    def n_cols(self) -> int:
        return len(self.opt_cats) + 1

    @property
    def n_rows(self) -> int:
        return self.item_code.size

    def per_cell(self, per_item: np.ndarray) -> np.ndarray:
        """Repeat a per-item array over the option columns: one entry per cell."""
        return np.repeat(np.asarray(per_item), self.n_cols)

    def codes(self, start: int = 0, stop: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Cell codes (intp, the index type ``take`` wants) of rows ``start:stop``, into *out* if given."""
        stop = self.n_rows if stop is None else stop
        cell = np.multiply(self.item_code[start:stop], self.n_cols, dtype=np.intp,
                           out=None if out is None else out[:stop - start])
        opt = self.opt_code[start:stop]
        cell += opt
        cell[opt < 0] += self.n_cols  # missing option (code -1) -> last column
        return cell


def _answer_cells(answers: pd.DataFrame, coefficients: Mapping[str, Mapping[str, float | None]],
                  item_scale: Mapping[str, str]) -> _Cells:
    """Cell code and value table of the answers; raise for unknown items and options foreign to a scale.

    Parameters
    ----------
    answers : DataFrame
        Columns ``item`` and ``option`` (strings or categoricals of strings).
    coefficients : dict
        Scale → {option code: coefficient, or None for an excluded option}.
    item_scale : dict
        Item code → scale code.

    Returns
    -------
    _Cells
    """
    item_code, item_cats = _codes(answers["item"])
    if np.any(item_code < 0):
        raise ValueError("answers has rows without an item code")
    unknown = [i for i in item_cats if i not in item_scale]
    if unknown:
        raise ValueError(f"answers has item(s) not in the item table: {unknown[:10]}")
    scale_names = sorted({item_scale[i] for i in item_cats})
    for s in scale_names:
        if s not in coefficients:
            raise ValueError(f"scale {s!r} has no coefficients")
    scale_of_item = np.array([scale_names.index(item_scale[i]) for i in item_cats], dtype=np.int64)
    opt_code, opt_cats = _codes(answers["option"])
    bad = [o for o in opt_cats if not isinstance(o, str)]
    if bad:
        raise TypeError(f"answer option codes must be strings, got {bad[:5]}")
    n_cols = len(opt_cats) + 1  # last column: blank (missing option)
    table = np.full((len(scale_names), n_cols), np.nan)
    allowed = np.zeros_like(table, dtype=bool)
    allowed[:, -1] = True
    for si, s in enumerate(scale_names):
        for oi, o in enumerate(opt_cats):
            if o.strip() == "":
                allowed[si, oi] = True
            elif o in coefficients[s]:
                allowed[si, oi] = True
                coef = coefficients[s][o]
                table[si, oi] = np.nan if coef is None else coef

    n_cells = len(item_cats) * n_cols
    cells = _Cells(item_code, opt_code, item_cats, pd.Index(opt_cats), scale_names, scale_of_item,
                   table[scale_of_item].ravel())
    # which options occur with which scale: count the cells once, then fold items onto their scale
    seen = np.zeros(n_cells, dtype=np.int64)
    buf = np.empty(min(ROW_CHUNK, cells.n_rows), dtype=np.intp)
    for start in range(0, cells.n_rows, ROW_CHUNK):
        seen += np.bincount(cells.codes(start, min(start + ROW_CHUNK, cells.n_rows), buf), minlength=n_cells)
    seen = seen.reshape(len(item_cats), n_cols) > 0
    present = np.zeros_like(allowed)
    for i, si in enumerate(scale_of_item):
        present[si] |= seen[i]
    wrong = present & ~allowed
    if wrong.any():
        si, oi = np.argwhere(wrong)[0]
        raise ValueError(f"option {opt_cats[oi]!r} is not an option of scale {scale_names[si]!r}")
    return cells


def item_values(answers: pd.DataFrame, coefficients: Mapping[str, Mapping[str, float | None]],
                item_scale: Mapping[str, str]) -> pd.Series:
    """Numeric value v of every answer from its item's scale coefficients.

    Parameters
    ----------
    answers : DataFrame
        Columns ``item`` and ``option`` (option codes as strings; missing or "" = blank).
    coefficients : dict
        Scale → {option code: coefficient, or None for an excluded option such as "K"}.
    item_scale : dict
        Item code → scale code.

    Returns
    -------
    Series
        Float values aligned to ``answers.index`` (NaN for blank or excluded answers), named ``"v"``.

    Raises
    ------
    ValueError
        For an item without a scale, a scale without coefficients, or an option the scale lacks.

    Examples
    --------
    >>> a = pd.DataFrame({"item": ["q1", "q1", "q1"], "option": ["4", "K", None]})
    >>> item_values(a, {"DG4": {"1": 0, "2": 1/3, "3": 2/3, "4": 1, "K": None}}, {"q1": "DG4"}).tolist()
    [1.0, nan, nan]
    """
    require_frame(answers, "answers")
    require_columns(answers, ["item", "option"], "answers")
    cells = _answer_cells(answers, coefficients, item_scale)
    return pd.Series(cells.value.take(cells.codes()), index=answers.index, name="v")


@dataclass(frozen=True)
class _Units:
    """Scoring units (``response_id`` × ``agency``) of the answers, found from runs of rows.

    A *run* is a maximal block of consecutive rows with the same response_id, agency, group and
    agency kind. Answers arrive grouped by response, so there are about as many runs as units and all
    hashing happens on one value per run instead of one per answer; unordered input only makes the
    runs shorter (down to one row), never the result different. Units are numbered in order of
    first appearance.
    """

    run_unit: np.ndarray   # unit code of every run (int32 when it fits)
    run_start: np.ndarray  # first row of every run
    n_rows: int
    unit_start: np.ndarray | None  # first row of every unit when each unit is one run, else None
    resp_cats: pd.Index    # distinct response ids
    resp_u: np.ndarray     # per unit: code into resp_cats
    ag_u: np.ndarray       # per unit: agency code
    grp_u: np.ndarray      # per unit: group code
    kind_a: np.ndarray     # per agency code: kind code (-1 = agency without answers)
    ag_cats: pd.Index
    grp_cats: pd.Index
    kind_cats: pd.Index

    @property
    def n(self) -> int:
        return self.ag_u.size

    @cached_property
    def row_unit(self) -> np.ndarray:
        """The unit code of every row, expanded from the runs only when asked for: the passes over
        answers grouped by response number the rows a slice at a time instead (:meth:`chunks`)."""
        return np.repeat(self.run_unit, np.diff(np.append(self.run_start, self.n_rows)))

    def local_units(self, r0: int, r1: int, u0: int, u1: int) -> np.ndarray:
        """Unit codes minus *u0* of rows ``r0:r1``, a slice of :meth:`chunks`."""
        if self.unit_start is None:
            return self.row_unit[r0:r1] - u0 if u0 else self.row_unit[r0:r1]
        lengths = np.diff(np.append(self.unit_start[u0:u1], r1))
        return np.repeat(np.arange(u1 - u0, dtype=np.intp), lengths)

    @property
    def n_cells(self) -> int:
        """Number of agency × group cells (agency-major), observed or not."""
        return len(self.ag_cats) * len(self.grp_cats)

    def unit_cells(self) -> np.ndarray:
        """The agency × group cell of every unit: the domain of the group means."""
        return self.ag_u * len(self.grp_cats) + self.grp_u

    def cells_of(self, table: pd.DataFrame) -> np.ndarray:
        """The agency × group cell of every row of a table with ``agency`` and ``group`` columns."""
        agency = self.ag_cats.get_indexer(table["agency"])
        return agency * len(self.grp_cats) + self.grp_cats.get_indexer(table["group"])

    def bin_sums(self, row_bin: np.ndarray, n_bins: int, weights: np.ndarray | None = None) -> np.ndarray:
        """Sum of *weights* (or count of rows) per bin × unit, as an ``n_bins × n`` array.

        *row_bin* (intp, overwritten) gives every row's bin in ``[0, n_bins)``. One ``bincount``
        over the key ``bin * n + unit``, built in place; each bin × unit total adds its rows in row
        order, as a masked bincount would. Bin-major output so that each bin is a contiguous row.
        """
        key = row_bin
        key *= self.n
        key += self.row_unit
        out = np.bincount(key, weights=weights, minlength=self.n * n_bins)
        return out.reshape(n_bins, self.n)

    def chunks(self) -> list[tuple[int, int, int, int]]:
        """``(first row, end row, first unit, end unit)`` of slices of about :data:`ROW_CHUNK` rows.

        When every unit's rows are one run (answers grouped by response), a slice holds whole units,
        so per-unit sums over slices add the same rows in the same order as over all rows, bit for
        bit. Otherwise one slice of everything.
        """
        n_rows = self.n_rows
        if self.unit_start is None or n_rows <= ROW_CHUNK:
            return [(0, n_rows, 0, self.n)]
        # each slice starts at the first unit starting at or after a multiple of ROW_CHUNK rows
        bounds = np.unique(np.searchsorted(self.unit_start, np.arange(0, n_rows, ROW_CHUNK)))
        bounds = bounds[bounds < self.n]
        units = np.append(bounds, self.n)
        rows = np.append(self.unit_start[bounds], n_rows)
        return [(int(rows[i]), int(rows[i + 1]), int(units[i]), int(units[i + 1])) for i in range(len(bounds))]


def _units(answers: pd.DataFrame) -> _Units:
    """Scoring units of the answers with their group and agency kind.

    Parameters
    ----------
    answers : DataFrame
        The ``ANSWER_COLUMNS`` frame, in any row order.

    Returns
    -------
    _Units

    Raises
    ------
    ValueError
        For rows without response_id, agency, group or agency_kind, a group that varies within a
        unit, or a kind that varies within an agency.

    Notes
    -----
    Run starts are rows where the response id or the packed (agency, group, kind) code differs from
    the previous row. Units are then factorized from one (response code, agency) key per run;
    since every unit first appears at a run start, the unit numbering equals factorizing all rows.
    """
    resp = answers["response_id"]
    if isinstance(resp.dtype, np.dtype) and resp.dtype.kind in "iu":
        # plain integer ids: compare them directly, factorize only the run starts below
        resp_key, resp_cats = resp.to_numpy(), None
    else:
        resp_key, resp_cats = _codes(resp)
    ag_code, ag_cats = _codes(answers["agency"])
    if (resp_cats is not None and np.any(resp_key < 0)) or np.any(ag_code < 0):
        raise ValueError("answers has rows without response_id or agency")
    grp_code, grp_cats = _codes(answers["group"])
    kind_code, kind_cats = _codes(answers["agency_kind"])
    if np.any(grp_code < 0) or np.any(kind_code < 0):
        raise ValueError("answers has rows without group or agency_kind")
    n_ag, n_grp, n_kind = len(ag_cats), len(grp_cats), len(kind_cats)

    # (agency, group, kind) as one integer per row so that a single comparison finds the run starts
    dtype = np.int32 if n_ag * n_grp * n_kind < 2**31 else np.int64
    combo = ag_code.astype(dtype)
    combo *= n_grp
    combo += grp_code
    combo *= n_kind
    combo += kind_code
    n = len(answers)
    new_run = np.ones(n, dtype=bool)
    np.not_equal(resp_key[1:], resp_key[:-1], out=new_run[1:])
    new_run[1:] |= combo[1:] != combo[:-1]
    del combo
    starts = np.flatnonzero(new_run)
    del new_run

    if resp_cats is None:
        # every id first appears at a run start, so this equals factorizing the whole column
        resp_h, uniq = pd.factorize(resp_key[starts])
        resp_cats = pd.Index(uniq)
    else:
        resp_h = resp_key[starts]
    ag_h = ag_code[starts].astype(np.int64)
    run_unit, unit_keys = pd.factorize(resp_h.astype(np.int64) * np.int64(n_ag) + ag_h)
    run_unit = np.asarray(run_unit, dtype=np.int64)
    unit_keys = np.asarray(unit_keys)
    n_unit = len(unit_keys)
    # group and kind are constant within a run; check them across the runs of a unit / agency
    grp_h = grp_code[starts].astype(np.int64)
    grp_u = np.empty(n_unit, dtype=np.int64)
    grp_u[run_unit] = grp_h
    if np.any(grp_u[run_unit] != grp_h):
        raise ValueError("group must be constant within each (response_id, agency)")
    kind_h = kind_code[starts].astype(np.int64)
    kind_a = np.full(n_ag, -1, dtype=np.int64)
    kind_a[ag_h] = kind_h
    if np.any(kind_a[ag_h] != kind_h):
        raise ValueError("agency_kind must be constant within each agency")
    # one run per unit, numbered in order: unit u is run u (units are numbered by first appearance)
    unit_start = starts if len(starts) == n_unit else None
    # int32 halves the memory of the row_unit array, should it be expanded
    return _Units(run_unit.astype(np.int32 if n_unit < 2**31 else np.int64), starts, n, unit_start, resp_cats,
                  unit_keys // n_ag, unit_keys % n_ag, grp_u, kind_a, ag_cats, grp_cats, kind_cats)


def _criterion_index(item_cats: pd.Index, item_criterion: Mapping[str, str],
                     criteria: Sequence[str] | None) -> tuple[list, np.ndarray]:
    """Criterion names and the criterion index of every item category (-1 = not among the criteria)."""
    crit_names = sorted({item_criterion[i] for i in item_criterion}) if criteria is None else list(criteria)
    crit_index = {c: j for j, c in enumerate(crit_names)}
    crit_of_item = np.array([crit_index.get(item_criterion.get(i), -1) for i in item_cats], dtype=np.int64)
    return crit_names, crit_of_item


def _unit_strata(answers: pd.DataFrame, units: _Units) -> tuple[np.ndarray, np.ndarray]:
    """The sampling cell of every unit (the group when *answers* has no ``stratum`` column): its
    label, and its rank among the sorted labels (what the design's strata are coded by)."""
    if "stratum" not in answers.columns:
        per_unit, cats = units.grp_u, units.grp_cats
    else:
        codes, cats = _codes(answers["stratum"])
        if np.any(codes < 0):
            raise ValueError("answers has rows without a stratum")
        per_unit = np.empty(units.n, dtype=np.int64)
        per_unit[units.row_unit[::-1]] = codes[::-1]
        if np.any(per_unit[units.row_unit] != codes):
            raise ValueError("stratum must be constant within each (response_id, agency)")
        pairs = pd.unique(per_unit * np.int64(len(units.grp_cats)) + units.grp_u)
        if pd.Series(pairs // len(units.grp_cats)).duplicated().any():
            raise ValueError("a stratum (sampling cell) must belong to one group (form)")
    rank = pd.factorize(cats, sort=True)[0].astype(np.int64)
    return cats.take(per_unit).to_numpy(), rank[per_unit]


def _unit_tables(cells: _Cells, units: _Units, crit_of_item: np.ndarray, n_crit: int, cfg: _Config):
    """Everything scoring needs per unit, from two passes over the answers.

    Returns
    -------
    score : ndarray, shape (n_crit, n_units)
        m(r, c): the mean of the valid item values per criterion × unit (NaN without any).
    sat_ans, sat_pos : ndarray, shape (1, n_units)
        Valid and positive answers on the satisfaction scale.
    rate_cells : ndarray, shape (3, n_crit + 1, n_agencies × n_groups)
        Valid answers, positive answers and responses with a valid answer on the positive-rate scales
        per criterion and over all items (last row), summed per agency × group cell.

    Notes
    -----
    Pass 1 sums the values per unit × criterion in row order (so the sums are bit-for-bit those of
    a bincount over the valid rows). Pass 2 counts rows per unit × (bucket, positive) where a
    bucket is a distinct (criterion, satisfaction scale?, rate scale?) combination of the items;
    every count above is an integer sum of bucket rows. (A small loop of contiguous vector adds
    rather than a matrix product: a 9 × 1e6 by 8 × 9 product through BLAS is much slower.)
    """
    n_cols = cells.n_cols
    valid = ~np.isnan(cells.value)
    crit_cell = cells.per_cell(crit_of_item)

    # pass 1: value sums; bin 0 collects blanks, excluded options and items outside the criteria
    bin1 = np.where(valid & (crit_cell >= 0), crit_cell + 1, 0).astype(np.intp)
    value0 = np.where(valid, cells.value, 0.0)

    # pass 2: counts per bucket and positive flag; bin 0 collects rows without a valid value
    scale_of_item = cells.scale_of_item
    sat = np.array([cells.scale_names[s] == cfg.satisfaction_scale for s in scale_of_item], dtype=bool)
    rate = np.array([cells.scale_names[s] in cfg.rate_scales for s in scale_of_item], dtype=bool)
    # bucket = distinct (criterion, sat, rate) triple, packed in one integer: (crit + 1) * 4 + sat * 2 + rate
    triples, bucket_of_item = np.unique((crit_of_item + 1) * 4 + sat * 2 + rate, return_inverse=True)
    b_crit, b_sat, b_rate = triples // 4 - 1, (triples // 2) % 2, triples % 2
    positive = np.zeros((len(scale_of_item), n_cols), dtype=bool)
    for i, si in enumerate(scale_of_item):
        codes = cfg.positive.get(cells.scale_names[si], ())
        positive[i, :-1] = [o in codes for o in cells.opt_cats]
    bin2 = np.where(valid, 1 + 2 * cells.per_cell(bucket_of_item) + positive.ravel(), 0).astype(np.intp)
    n_b = len(triples)

    # both passes a slice of rows at a time, in buffers reused from slice to slice; the bucket
    # counts are folded per slice, and the rates' counts summed per agency × group cell at once
    n, n_rates = units.n, n_crit + 1
    score = np.empty((n_crit, n))
    sat_ans, sat_pos = np.zeros((1, n), dtype=np.int64), np.zeros((1, n), dtype=np.int64)
    rate_cells = np.zeros((3, n_rates, units.n_cells))
    unit_cell = units.unit_cells()
    size = max(r1 - r0 for r0, r1, _, _ in units.chunks()) if n else 0
    cell_buf, key, weights = np.empty(size, dtype=np.intp), np.empty(size, dtype=np.intp), np.empty(size)
    for r0, r1, u0, u1 in units.chunks():
        m, rows = u1 - u0, slice(0, r1 - r0)
        cell = cells.codes(r0, r1, cell_buf)
        local = units.local_units(r0, r1, u0, u1)
        bins = []
        passes = ((bin1, np.take(value0, cell, out=weights[rows]), n_crit + 1), (bin2, None, 1 + 2 * n_b))
        for table, w, n_bins in passes:
            k = np.take(table, cell, out=key[rows])
            k *= m
            k += local
            bins.append(np.bincount(k, weights=w, minlength=m * n_bins).reshape(n_bins, m))
        counts = bins[1]
        # row 1 + 2b counts the valid non-positive answers of bucket b, row 2 + 2b the positive ones
        cnt = np.zeros((n_crit, m), dtype=np.int64)
        rate_ans, rate_pos = np.zeros((n_rates, m), dtype=np.int64), np.zeros((n_rates, m), dtype=np.int64)
        for b in range(n_b):
            pos = counts[2 + 2 * b]
            ans = counts[1 + 2 * b] + pos
            c = b_crit[b]
            if c >= 0:
                cnt[c] += ans
            if b_sat[b]:
                sat_ans[0, u0:u1] += ans
                sat_pos[0, u0:u1] += pos
            if b_rate[b]:
                if c >= 0:
                    rate_ans[c] += ans
                    rate_pos[c] += pos
                rate_ans[-1] += ans
                rate_pos[-1] += pos
        score[:, u0:u1] = _mean_of(bins[0][1:], cnt)
        rate_cells += _cell_counts(unit_cell[u0:u1], units.n_cells, rate_ans, rate_pos)
    return score, sat_ans, sat_pos, rate_cells


def _mean_of(sums: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """m(r, c): the value sums over their counts, NaN where a unit has no valid item of c."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, sums / np.where(cnt > 0, cnt, 1), np.nan)


def _cell_counts(unit_cell: np.ndarray, n_cells: int, n_ans_u: np.ndarray, n_pos_u: np.ndarray) -> np.ndarray:
    """Valid answers, positive answers and responses with a valid answer per key × agency × group cell
    (``3 × n_key × n_cells``) from the counts of units (``n_key × units``) in cells *unit_cell*."""
    return np.stack([np.vstack([np.bincount(unit_cell, weights=row, minlength=n_cells) for row in x])
                     for x in (n_ans_u, n_pos_u, n_ans_u > 0)])

"""Spreadsheet files in and out: the cells of every CSV and XLSX export, and the reading of CSV uploads.

Spreadsheet programs run a CSV cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage
return before one) as a formula, and xlsxwriter turns such a string into a formula unless told not to: a
name like ``=HYPERLINK(...)`` in a round's agency file would become a live formula in every export. Every
export writes its text cells through this module: in CSV such a cell gets a leading apostrophe (the usual
defence, shown as text by Excel and LibreOffice), in XLSX it is stored as a string cell, never a formula.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

import pandas as pd

from survey_service.services.errors import ServiceError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: xlsxwriter options: strings stay strings (no formulas, no links made from text).
XLSX_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False}


def csv_cell(value):
    """A CSV cell that no spreadsheet program runs as a formula; numbers and other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_rows(rows: Iterable[Iterable]) -> Iterator[list]:
    return ([csv_cell(v) for v in row] for row in rows)


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) are safe to write as CSV."""
    out = frame.rename(columns=csv_cell)
    for col in out.columns:
        values = out[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            out[col] = values.cat.rename_categories(
                [csv_cell(c) for c in values.cat.categories])
            continue
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        try:
            risky = values.str.startswith(FORMULA_STARTS, na=False).astype(bool)
        except AttributeError:  # an object column without any text
            continue
        if risky.any():
            out[col] = values.where(~risky, "'" + values.astype(str))
    return out


class UnreadableCsv(ServiceError):
    """The csv module could not read a line; the message is in Vietnamese, for the user."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


def records(reader) -> Iterator:
    """The rows of a ``csv.reader`` or ``csv.DictReader``, with the csv module's English errors (a
    field over its size limit, a stray quote) turned into :class:`UnreadableCsv`."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                message = f"có ô dài quá {csv.field_size_limit():,} ký tự".replace(",", ".")
            else:
                message = "dòng không đọc được theo định dạng CSV (dấu ngoặc kép hoặc xuống dòng không khớp)"
            raise UnreadableCsv(reader.line_num, message) from None

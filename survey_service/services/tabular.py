"""Spreadsheet files in and out: the cells of every CSV and XLSX export, and the reading of CSV uploads.

Spreadsheet programs run a CSV cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage
return before one) as a formula, and xlsxwriter turns such a string into a formula unless told not to: a
name like ``=HYPERLINK(...)`` in a round's agency file would become a live formula in every export. Every
export writes its text cells through this module: in CSV such a cell gets a leading apostrophe (the usual
defence, shown as text by Excel and LibreOffice), in XLSX it is stored as a string cell, never a formula.
"""
from __future__ import annotations

import csv
import io
import unicodedata
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


#: The largest spreadsheet upload read (rows past it are refused, not read).
MAX_ROWS = 200_000


class UnreadableTable(ServiceError):
    """An uploaded CSV or XLSX that cannot be read as a table; the message is in Vietnamese."""


def read_table(data: bytes, filename: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the non-blank rows of an uploaded CSV (UTF-8, with or without BOM; comma, semicolon
    or tab) or XLSX (its first sheet), each row with its line in the file as a spreadsheet program numbers
    it, cells trimmed and in NFC.

    :raises UnreadableTable: when the file is empty, not UTF-8, not a workbook, or too long.
    """
    if filename.lower().endswith(".xlsx"):
        header, rows = _xlsx_rows(data)
    else:
        header, rows = _csv_rows(data)
    header = [_text(h) for h in header]
    out = []
    for line, cells in rows:
        values = [_text(c) for c in cells]
        if any(values):
            if len(out) >= MAX_ROWS:
                raise UnreadableTable(f"Tệp có hơn {MAX_ROWS:,} dòng; hãy chia nhỏ tệp.".replace(",", "."))
            out.append((line, dict(zip(header, values + [""] * (len(header) - len(values))))))
    if not header or not any(header):
        raise UnreadableTable("Tệp rỗng: dòng 1 phải là dòng tiêu đề.")
    return header, out


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFC", str(value)).strip()


def _csv_rows(data: bytes):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableTable("Tệp không phải văn bản UTF-8. Hãy lưu tệp dưới dạng CSV UTF-8 hoặc XLSX.") from None
    if not text.strip():
        raise UnreadableTable("Tệp rỗng: dòng 1 phải là dòng tiêu đề.")
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect=dialect)
    try:
        header = next(records(reader))
        rows = []
        line = reader.line_num + 1
        for row in records(reader):
            rows.append((line, row))
            line = reader.line_num + 1
    except UnreadableCsv as exc:
        raise UnreadableTable(f"Dòng {exc.line}: {exc}.") from None
    return header, rows


def _xlsx_rows(data: bytes):
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise UnreadableTable("Tệp không phải bảng tính XLSX đọc được.") from None
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = list(next(rows, ()) or ())
        return header, [(line, list(row)) for line, row in enumerate(rows, start=2)]
    finally:
        book.close()

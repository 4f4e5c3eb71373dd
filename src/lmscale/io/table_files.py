"""Reading a CSV table a person wrote, so that whatever is wrong with the file is named in one line.

The file must be UTF-8 (an invalid byte is named by its line and character), comma-separated
(a table read as one column asks whether the separator was ';'), with a header and its rows.
Labels (model, dataset, size, valset, task) stay text: a size `0.150` is not the number 0.15.
Every row keeps the line it was read from, as an editor numbers it (the header is line 1), so
that the checks of lmscale.io.tables name a bad value by its line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

# Read as text: a size `0.150` or a model `007` is a name, not a number.
LABEL_COLUMNS = ["model", "dataset", "size", "valset", "task"]
# The line of its file each row was read from: a hidden column the messages quote, never written.
LINE = "_line"


class TableError(ValueError):
    """A testbed table that would bend a law; the message names the file, the row and the column."""


def read_table(path, columns: list[str]) -> pd.DataFrame:
    """A CSV table as a person may have written it: UTF-8, comma-separated, a header naming
    `columns` (among others). Labels stay text; each row keeps its line number (LINE) for messages.

    Numbers are parsed by pandas as in `read_csv`, so a table reads to the same values either way."""
    text = _utf8_text(path)
    try:
        table = pd.read_csv(path, dtype={column: str for column in LABEL_COLUMNS})
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: line 1: the file is empty; a table starts with a header line naming its "
                         f"columns ({', '.join(columns)})") from None
    except pd.errors.ParserError as error:
        raise TableError(f"{path}: not a readable CSV table ({' '.join(str(error).split())})") from None
    header = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    if len(table.columns) == 1 and len(columns) > 1:
        separator = next((s for s in (";", "\t", "|") if s in header), None)
        guess = f"; is the separator {separator!r}?" if separator else ""
        raise TableError(f"{path}: line 1: read one column ({header[:60]!r}){guess} write the table "
                         f"comma-separated, with the columns {', '.join(columns)}")
    lines = _data_lines(text)
    if len(lines) == len(table):
        table[LINE] = lines
    return table


def _utf8_text(path) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        offset = error.start - data.rfind(b"\n", 0, error.start)
        raise TableError(f"{path}: line {line}: byte {data[error.start]:#04x} (byte {offset} of the line) is not "
                         f"UTF-8 text; save the table as UTF-8 (a spreadsheet's 'CSV UTF-8')") from None


def _data_lines(text: str) -> list[int]:
    """The line (from 1, the header's being 1) each data row of a CSV text starts on, blank lines
    skipped as pandas skips them; none if the csv module cannot read it."""
    starts, end = [], 0
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if record and not (len(record) == 1 and not record[0].strip()):
                starts.append(start)
    except csv.Error:
        return []
    return starts[1:]

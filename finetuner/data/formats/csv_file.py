"""CSV files with a header row; values are stripped and blank lines skipped. Streamed: each column the data needs is
read in its own pass over the file, so unused columns (long descriptions, embedded data) never sit in memory."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataKind, FileFormat, register_format
from finetuner.data.formats.table import Table, table_to_data
from finetuner.data.records import LabeledData, PairData


class CsvFormat(FileFormat):
    """A ``.csv`` file (UTF-8, header row): e.g. ``path,label``, ``text,label``, ``query,document[,score]``,
    ``anchor,positive,negative``; image paths are relative to the file's folder.

    Example:
        >>> CsvFormat().read("train.csv", {"text": "review", "label": "stars"}, DataKind.AUTO)  # doctest: +SKIP
        LabeledData(5000 items, 5 classes: 1, 2, 3, 4, 5)
    """

    name = "csv"
    priority = 30
    description = "a .csv file with a header row"
    tabular = True
    suffixes = (".csv",)

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        path = Path(source)
        with _rows(path) as rows:
            header = [name.strip() for name in next(rows, ("", []))[1]]
            num_rows = sum(1 for _ in rows)

        def read_column(name: str) -> list[str]:
            position = header.index(name)
            with _rows(path) as rows:
                next(rows, None)
                return [row[position].strip() if position < len(row) else "" for _, row in rows]

        def row_name(index: int) -> str:  # only for messages: one more pass instead of a line number per row
            with _rows(path) as rows:
                next(rows, None)
                return f"line {next(line for number, (line, _) in enumerate(rows) if number == index)}"

        table = Table(str(path), header, num_rows, read_column, folder=path.parent, row_name=row_name)
        return table_to_data(table, columns, kind)


@contextlib.contextmanager
def _rows(path: Path) -> Iterator[Iterator[tuple[int, list[str]]]]:
    """The non-blank rows of a CSV file as ``(line number, values)``, the header first; read errors as DataError."""
    try:
        file = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise _error(path, error) from error
    with file:
        yield _non_blank(csv.reader(file), path)


def _non_blank(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        for row in reader:
            if any(value.strip() for value in row):
                yield reader.line_num, row
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise _error(path, error) from error


def _error(path: Path, error: Exception) -> DataError:
    return DataError(f"cannot read CSV {path}: {error}; save it as UTF-8 CSV with a header row")


register_format(CsvFormat())

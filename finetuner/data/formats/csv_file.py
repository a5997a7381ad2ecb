"""CSV files with a header row; values are stripped and blank lines skipped."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataKind, FileFormat
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
    description = "a .csv file with a header row"
    tabular = True
    suffixes = (".csv",)

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        path = Path(source)
        try:
            with path.open(newline="", encoding="utf-8-sig") as file:
                reader = csv.reader(file)
                header = [name.strip() for name in next(reader, [])]
                rows, lines = [], []
                for row in reader:
                    if any(value.strip() for value in row):
                        rows.append([value.strip() for value in row])
                        lines.append(reader.line_num)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise DataError(f"cannot read CSV {path}: {error}; save it as UTF-8 CSV with a header row") from error

        def read_column(name: str) -> list[str]:
            position = header.index(name)
            return [row[position] if position < len(row) else "" for row in rows]

        table = Table(
            str(path), header, len(rows), read_column, folder=path.parent, row_name=lambda i: f"line {lines[i]}"
        )
        return table_to_data(table, columns, kind)

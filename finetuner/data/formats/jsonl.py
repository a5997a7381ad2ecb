"""JSON Lines files: one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataKind, FileFormat
from finetuner.data.formats.dicts import rows_table
from finetuner.data.formats.table import table_to_data
from finetuner.data.records import LabeledData, PairData


class JsonlFormat(FileFormat):
    """A ``.jsonl`` file, one object per line, e.g. ``{"query": ..., "document": ...}``; blank lines are skipped
    and image paths are relative to the file's folder.

    Example:
        >>> JsonlFormat().read("pairs.jsonl", {}, DataKind.PAIRS)  # doctest: +SKIP
        PairData(1000 pairs, no scores)
    """

    name = "jsonl"
    description = "a .jsonl file (one JSON object per line)"
    tabular = True
    suffixes = (".jsonl", ".ndjson")

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        path = Path(source)
        rows, lines = [], []
        try:
            with path.open(encoding="utf-8-sig") as file:
                for number, line in enumerate(file, start=1):
                    if line.strip():
                        rows.append(json.loads(line))
                        lines.append(number)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {number}: not valid JSON ({error.msg}); write one JSON object per line"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read {path}: {error}; save it as UTF-8 JSON Lines") from error
        table = rows_table(rows, str(path), row_name=lambda i: f"line {lines[i]}", folder=path.parent)
        return table_to_data(table, columns, kind)

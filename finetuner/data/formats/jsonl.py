"""JSON Lines files: one JSON object per line. Streamed: one pass finds the columns, then each column the data
needs is read in its own pass, so other fields (long texts, embedded data) never sit in memory all at once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataKind, FileFormat, register_format
from finetuner.data.formats.table import Table, table_to_data
from finetuner.data.records import LabeledData, PairData


class JsonlFormat(FileFormat):
    """A ``.jsonl`` file, one object per line, e.g. ``{"query": ..., "document": ...}``; blank lines are skipped
    and image paths are relative to the file's folder.

    Example:
        >>> JsonlFormat().read("pairs.jsonl", {}, DataKind.PAIRS)  # doctest: +SKIP
        PairData(1000 pairs, no scores)
    """

    name = "jsonl"
    priority = 40
    description = "a .jsonl file (one JSON object per line)"
    tabular = True
    suffixes = (".jsonl", ".ndjson")

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        path = Path(source)
        names: dict[str, None] = {}  # the keys of all rows, in order of appearance
        num_rows = 0
        with _objects(path) as rows:
            for line, row in rows:
                if not isinstance(row, Mapping):
                    raise DataError(f"{path}, line {line}: expected a dict of column values, got {type(row).__name__}")
                names.update(dict.fromkeys(row))
                num_rows += 1

        def read_column(name: str) -> list:
            with _objects(path) as rows:
                return [row.get(name) for _, row in rows]

        def row_name(index: int) -> str:  # only for messages: one more pass instead of a line number per row
            with _objects(path) as rows:
                return f"line {next(line for number, (line, _) in enumerate(rows) if number == index)}"

        table = Table(str(path), list(names), num_rows, read_column, folder=path.parent, row_name=row_name)
        return table_to_data(table, columns, kind)


@contextlib.contextmanager
def _objects(path: Path) -> Iterator[Iterator[tuple[int, Any]]]:
    """The parsed non-blank lines of a JSONL file as ``(line number, value)``; errors as DataError."""
    try:
        file = path.open(encoding="utf-8-sig")
    except OSError as error:
        raise _error(path, error) from error
    with file:
        yield _parsed(file, path)


def _parsed(file: Any, path: Path) -> Iterator[tuple[int, Any]]:
    number = 0
    try:
        for number, line in enumerate(file, start=1):
            if line.strip():
                yield number, json.loads(line)
    except json.JSONDecodeError as error:
        message = f"{path}, line {number}: not valid JSON ({error.msg}); write one JSON object per line"
        raise DataError(message) from None
    except (OSError, UnicodeDecodeError) as error:
        raise _error(path, error) from error


def _error(path: Path, error: Exception) -> DataError:
    return DataError(f"cannot read {path}: {error}; save it as UTF-8 JSON Lines")


register_format(JsonlFormat())

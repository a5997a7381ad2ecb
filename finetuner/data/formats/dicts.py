"""A list of dicts, one per row (``[{"text": ..., "label": ...}, ...]``); also the rows of a JSONL file."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataFormat, DataKind, register_format
from finetuner.data.formats.table import Table, table_to_data
from finetuner.data.records import LabeledData, PairData


class DictsFormat(DataFormat):
    """A list of dicts with the same keys, e.g. ``[{"anchor": ..., "positive": ...}, ...]``.

    Example:
        >>> DictsFormat().read([{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}], {}, DataKind.AUTO)
        LabeledData(2 items, 2 classes: neg, pos)
    """

    name = "dicts"
    priority = 90
    description = "a list of dicts (one per row, e.g. {'text': ..., 'label': ...})"
    tabular = True

    def can_read(self, source: Any) -> bool:
        return isinstance(source, (list, tuple)) and len(source) > 0 and isinstance(source[0], Mapping)

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        return table_to_data(rows_table(source, "the list of dicts"), columns, kind)


def rows_table(
    rows: Sequence[Any], name: str, row_name: Callable[[int], str] | None = None, folder: Path | None = None
) -> Table:
    """A `Table` over rows given as dicts; its columns are the keys of all rows, in order of appearance.

    Example:
        >>> rows_table([{"a": 1}, {"a": 2, "b": 3}], "rows").column_names
        ['a', 'b']
    """
    row_name = row_name or (lambda i: f"row {i}")
    names: dict[str, None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataError(f"{name}, {row_name(index)}: expected a dict of column values, got {type(row).__name__}")
        names.update(dict.fromkeys(row))
    return Table(
        name, list(names), len(rows), lambda column: [row.get(column) for row in rows], folder, row_name=row_name
    )


register_format(DictsFormat())

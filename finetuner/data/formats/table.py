"""Tabular sources: named columns mapped to roles (item, label, query, document, negative, score), then read.

Every tabular format (CSV, JSONL, Parquet, DataFrame, list of dicts, ``datasets.Dataset``) builds a `Table`
and calls `table_to_data`, so the ``columns=`` mapping, the default column names and the rules that decide
the kind are the same for all of them.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataKind, is_image_path
from finetuner.data.records import LabeledData, PairData, encode_labels
from finetuner.data.vectors import VectorData, VectorPairs

# The keys ``columns=`` accepts, and the role each one names.
COLUMN_KEYS = {
    "image": "item",
    "path": "item",
    "text": "item",
    "item": "item",
    "vector": "item",
    "label": "label",
    "query": "query",
    "anchor": "query",
    "document": "document",
    "positive": "document",
    "negative": "negative",
    "score": "score",
}
# Column names read without a mapping, first match wins (case-insensitive); sentence-transformers' names included.
DEFAULT_COLUMNS = {
    "item": ("image", "path", "text", "item", "sentence", "vector", "embedding"),
    "label": ("label",),
    "query": ("query", "anchor", "sentence1"),
    "document": ("document", "positive", "sentence2"),
    "negative": ("negative",),
    "score": ("score",),
}
PATH_COLUMNS = ("image", "path")  # item columns that hold file paths: checked, relative ones resolved
LABELED_ROLES = ("item", "label")
PAIR_ROLES = ("query", "document", "negative", "score")


def _row_name(index: int) -> str:
    return f"row {index}"


@dataclass
class Table:
    """The named columns of one tabular source, read one column at a time.

    Args:
        name: names the source in messages (a path, ``"the DataFrame"``).
        column_names: in source order.
        num_rows: rows in the source.
        read_column: one column's values in row order: a list, or a lazy sequence (e.g. ``DatasetItems``)
            for values that are costly to hold all at once, such as decoded images.
        folder: relative paths in an ``image``/``path`` column are relative to it (a file's folder);
            ``None`` leaves them as given (relative to the working directory).
        class_names: for label columns of integer class ids, the class names by column (a ``ClassLabel``).
        row_name: a row index as a place in the source, for messages (``"line 3"``).

    Example:
        >>> rows = {"sentence": ["a", "b", "c"], "y": ["x", "z", "x"]}
        >>> table = Table("the dict", list(rows), 3, rows.__getitem__)
        >>> table_to_data(table, {"label": "y"}, DataKind.AUTO)
        LabeledData(3 items, 2 classes: x, z)
    """

    name: str
    column_names: list[str]
    num_rows: int
    read_column: Callable[[str], Sequence]
    folder: Path | None = None
    class_names: Mapping[str, Sequence[str]] = field(default_factory=dict)
    row_name: Callable[[int], str] = _row_name

    def find(self, name: str) -> str | None:
        """The column called ``name``: an exact match, else the one match ignoring case and spaces."""
        if name in self.column_names:
            return name
        matches = [column for column in self.column_names if str(column).strip().lower() == name.strip().lower()]
        return matches[0] if len(matches) == 1 else None


def table_to_data(table: Table, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
    """Read a `Table` as labelled data or pairs, with columns named by ``columns`` or by their default names.

    Args:
        table: the source's columns.
        columns: role -> column name, e.g. ``{"text": "sentence", "label": "y"}`` or
            ``{"query": "q", "document": "pos", "negative": "neg"}``; roles left out use the default names
            (item: image/path/text/item/sentence, label, query: query/anchor/sentence1,
            document: document/positive/sentence2, negative, score).
        kind: the requested kind; ``AUTO`` takes it from the mapped roles, else from the columns present.

    Returns:
        ``LabeledData`` or ``PairData`` (with scores and negatives when those columns are present).

    Raises:
        DataError: a mapped column is missing (the message lists the available ones), the kind is ambiguous
            or not in the table, or a required value is empty.

    Example:
        >>> rows = {"anchor": ["q1", "q2"], "positive": ["d1", "d2"], "negative": ["n1", "n2"]}
        >>> table_to_data(Table("the dict", list(rows), 2, rows.__getitem__), {}, DataKind.AUTO)
        PairData(2 pairs, no scores, with hard negatives)
    """
    roles, item_is_path = _resolve_columns(table, columns)
    kind = _decide_kind(table, roles, {COLUMN_KEYS[key] for key in columns}, kind)
    if table.num_rows == 0:
        raise DataError(f"{table.name} has no rows: add one row per item ({', '.join(map(str, table.column_names))})")
    if kind is DataKind.LABELED:
        _require(table, roles, LABELED_ROLES, kind)
        items = _required_values(table, roles["item"])
        if item_is_path:
            items = _image_paths(table, items)
        label_column = roles["label"]
        labels, classes = encode_labels(
            _required_values(table, label_column), names=table.class_names.get(label_column)
        )
        if _holds_vectors(items):  # a column of embeddings (lists or arrays of numbers): vectors as data
            return VectorData(_stacked(table, roles["item"], items), labels, classes)
        return LabeledData(items, labels, classes)
    needed = ("query", "document") + {DataKind.SCORED_PAIRS: ("score",), DataKind.TRIPLETS: ("negative",)}.get(kind, ())
    _require(table, roles, needed, kind)
    queries, documents = (_linked_images(table, _required_values(table, roles[role])) for role in ("query", "document"))
    scores = _scores(table, roles["score"]) if "score" in roles else None
    negatives = _linked_images(table, _required_values(table, roles["negative"])) if "negative" in roles else None
    if _holds_vectors(queries) and _holds_vectors(documents):
        stacked = {role: _stacked(table, roles[role], values) for role, values in
                   (("query", queries), ("document", documents), ("negative", negatives)) if values is not None}
        return VectorPairs(stacked["query"], stacked["document"], scores, stacked.get("negative"))
    return PairData(queries, documents, scores, negatives)


def _holds_vectors(values: Sequence) -> bool:
    """Whether a column holds embeddings: its first value a flat list, tuple or array of numbers."""
    first = values[0] if isinstance(values, list) and values else None
    if isinstance(first, (list, tuple)) and first:
        return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in first)
    return isinstance(first, np.ndarray) and first.ndim == 1 and np.issubdtype(first.dtype, np.number)


def _stacked(table: Table, column: str, values: Sequence) -> np.ndarray:
    """A column of embeddings as one ``(n, d)`` array; rows of another width are named."""
    width = len(values[0])
    wrong = next((i for i, value in enumerate(values) if len(value) != width), None)
    if wrong is not None:
        raise DataError(
            f"{table.name}, {table.row_name(wrong)}: {column!r} has {len(values[wrong])} numbers, the first row "
            f"{width}: every vector of a column must have the same width"
        )
    return np.asarray(values, dtype=np.float32)


def _resolve_columns(table: Table, columns: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """Role -> column name (mapped ones first, then defaults), and whether the item column holds file paths."""
    roles: dict[str, str] = {}
    item_is_path = False
    for key, name in columns.items():
        role = COLUMN_KEYS.get(key)
        if role is None:
            raise ValueError(f"unknown key {key!r} in columns=; accepted keys: {', '.join(COLUMN_KEYS)}")
        if role in roles:
            raise ValueError(f"columns= names the {role} column twice ({roles[role]!r} and {name!r}): keep one")
        found = table.find(str(name))
        if found is None:
            raise DataError(
                f"column {name!r} (columns[{key!r}]) is not in {table.name}; "
                f"available columns: {', '.join(map(str, table.column_names))}"
            )
        roles[role] = found
        item_is_path = item_is_path or key in PATH_COLUMNS
    for role, names in DEFAULT_COLUMNS.items():
        if role in roles:
            continue
        found = next((column for column in map(table.find, names) if column is not None), None)
        if found is not None:
            roles[role] = found
            item_is_path = item_is_path or (role == "item" and found.strip().lower() in PATH_COLUMNS)
    return roles, item_is_path


def _decide_kind(table: Table, roles: dict[str, str], mapped: set[str], kind: DataKind) -> DataKind:
    mapped_labeled, mapped_pairs = mapped & set(LABELED_ROLES), mapped & set(PAIR_ROLES)
    if mapped_labeled and mapped_pairs:
        raise DataError(
            f"columns= maps both labelled-data roles ({', '.join(sorted(mapped_labeled))}) and pair roles "
            f"({', '.join(sorted(mapped_pairs))}): map item and label, or query and document (+ score/negative)"
        )
    if kind is not DataKind.AUTO:
        if (kind is DataKind.LABELED and mapped_pairs) or (kind.is_pairs and mapped_labeled):
            raise DataError(f"kind={kind.value!r} contradicts columns= mapping {sorted(mapped)}: drop one of them")
        return kind
    if mapped_labeled or mapped_pairs:
        return DataKind.LABELED if mapped_labeled else DataKind.PAIRS
    labeled = all(role in roles for role in LABELED_ROLES)
    pairs = all(role in roles for role in ("query", "document"))
    if labeled and pairs:
        raise DataError(
            f"{table.name} is ambiguous: it has labelled-data columns ({roles['item']!r}, {roles['label']!r}) and "
            f"pair columns ({roles['query']!r}, {roles['document']!r}); pass kind='labeled' or kind='pairs' "
            "(or columns=...) to say which to read"
        )
    if labeled or pairs:
        return DataKind.LABELED if labeled else DataKind.PAIRS
    raise DataError(
        f"{table.name} has columns {', '.join(map(str, table.column_names))}, none of them named as finetuner "
        "expects: map yours with columns=, e.g. columns={'text': 'sentence', 'label': 'y'} for labelled data or "
        "columns={'query': 'q', 'document': 'd'} for pairs. Names read without a mapping: "
        + "; ".join(f"{role}: {'/'.join(names)}" for role, names in DEFAULT_COLUMNS.items())
    )


def _require(table: Table, roles: dict[str, str], needed: Sequence[str], kind: DataKind) -> None:
    missing = [role for role in needed if role not in roles]
    if missing:
        role = missing[0]
        key = "text" if role == "item" else role
        article = "an" if role[0] in "aeiou" else "a"
        raise DataError(
            f"kind={kind.value!r} needs {article} {role} column ({' / '.join(DEFAULT_COLUMNS[role])}), but "
            f"{table.name} has only {', '.join(map(str, table.column_names))}: "
            f"name yours with columns={{{key!r}: '<column>'}}"
        )


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value)
    )


def _required_values(table: Table, column: str) -> Sequence:
    values = table.read_column(column)
    if isinstance(values, list):  # lazy columns (decoded images) are checked where they are read
        empty = next((i for i, value in enumerate(values) if _is_empty(value)), None)
        if empty is not None:
            raise DataError(f"{table.name}, {table.row_name(empty)}: empty {column!r}; fill it in or remove the row")
    return values


def _scores(table: Table, column: str) -> list[float]:
    values = _required_values(table, column)
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError) as error:
        raise DataError(
            f"{table.name}: every {column!r} value must be a number (the pair score) ({error}); "
            "fix or drop the score column"
        ) from None


def _resolve(table: Table, value: str) -> str:
    return value if table.folder is None or os.path.isabs(value) else str(table.folder / value)


def _image_paths(table: Table, values: Sequence) -> Sequence:
    """Paths in an image/path column, relative ones resolved against the table's folder; all must exist."""
    if not isinstance(values, list):
        return values
    paths = [_resolve(table, value) if isinstance(value, (str, os.PathLike)) else value for value in values]
    missing = [path for path in paths if isinstance(path, str) and not os.path.isfile(path)]
    if missing:
        base = f"{table.name}'s folder" if table.folder is not None else "the working directory"
        raise DataError(
            f"{table.name}: {len(missing)} image files not found, e.g. {missing[0]}; paths are relative "
            f"to {base}: fix the paths or remove those rows"
        )
    return paths


def _linked_images(table: Table, values: Sequence) -> Sequence:
    """Pair values naming image files relative to the table's folder, resolved; texts stay as they are."""
    if table.folder is None or not isinstance(values, list):
        return values
    resolved = []
    for value in values:
        if is_image_path(value) and os.path.isfile(_resolve(table, value)):
            value = _resolve(table, value)
        resolved.append(value)
    return resolved

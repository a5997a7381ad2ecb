"""Lists of tuples: ``(item, label)``, ``(query, document)``, ``(query, document, score)`` or
``(query, document, negative)``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataFormat, DataKind, register_format
from finetuner.data.records import LabeledData, PairData, encode_labels

MAX_LABEL_WORDS = 4  # a repeated second value longer than this reads as a document, not a class name
MAX_LABEL_CHARS = 40


class TuplesFormat(DataFormat):
    """A list of 2- or 3-tuples; ``kind`` says what 2-tuples are, else it is inferred where unambiguous.

    3-tuples are ``(query, document, score)`` when the third values are numbers, else
    ``(query, document, negative)``. For 2-tuples with ``kind="auto"``:

    - integer second values are class labels: ``(item, label)``;
    - second values that are neither strings nor integers (images, arrays) are documents: ``(query, document)``;
    - string second values that never repeat are documents (a class with one item teaches nothing);
    - string second values that repeat are class labels when all are short (at most 4 words, 40 characters),
      and ambiguous otherwise (documents shared by several queries?): a ``DataError`` asks for ``kind=``.

    Example:
        >>> TuplesFormat().read([("a.jpg", "dog"), ("b.jpg", "cat"), ("c.jpg", "dog")], {}, DataKind.AUTO)
        LabeledData(3 items, 2 classes: cat, dog)
        >>> TuplesFormat().read([("how to reset?", "Hold the button."), ("price?", "10 EUR")], {}, DataKind.AUTO)
        PairData(2 pairs, no scores)
    """

    name = "tuples"
    priority = 100
    description = "a list of (item, label), (query, document), (query, document, score) or (query, document, negative)"

    def can_read(self, source: Any) -> bool:
        return isinstance(source, (list, tuple)) and not (source and isinstance(source[0], Mapping))

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        if not source:
            raise DataError("the data list is empty: give a list of (item, label) or (query, document) tuples")
        sizes = {len(entry) if isinstance(entry, (tuple, list)) else None for entry in source}
        if sizes not in ({2}, {3}):
            raise DataError(
                "every list entry must be a tuple of 2 values, (item, label) or (query, document), or all of 3, "
                "(query, document, score) or (query, document, negative); "
                f"found entries of {sorted(sizes, key=str)} values"
            )
        firsts, seconds, *thirds = (list(column) for column in zip(*source))
        if thirds:
            if all(_is_number(value) for value in thirds[0]):
                return PairData(firsts, seconds, scores=thirds[0])
            return PairData(firsts, seconds, negatives=thirds[0])
        if kind is DataKind.AUTO:
            kind = _infer_kind(seconds)
        if kind is DataKind.LABELED:
            labels, classes = encode_labels(seconds)
            return LabeledData(firsts, labels, classes)
        if all(_is_class_id(value) for value in seconds):
            raise DataError(
                f"kind={kind.value!r} was asked for, but the second values are integer class labels, not documents: "
                "give (query, document) tuples, or ask for kind='labeled'"
            )
        return PairData(firsts, seconds)  # check_kind rejects it for kind='scored_pairs'/'triplets'


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _is_class_id(value: Any) -> bool:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _infer_kind(seconds: Sequence) -> DataKind:
    if all(not isinstance(value, str) and not _is_class_id(value) for value in seconds):
        return DataKind.PAIRS  # images, arrays: documents
    if not all(isinstance(value, str) for value in seconds):
        return DataKind.LABELED  # class ids (encode_labels rejects a mix of ids and names)
    value, count = Counter(seconds).most_common(1)[0]
    if count == 1:
        return DataKind.PAIRS
    if all(len(value) <= MAX_LABEL_CHARS and len(value.split()) <= MAX_LABEL_WORDS for value in set(seconds)):
        return DataKind.LABELED
    raise DataError(
        f"the (text, text) tuples are ambiguous: second values repeat ({value[:40]!r} appears {count} times) and "
        "are not all short class names, so they could be labels of (item, label) tuples or documents shared by "
        "several (query, document) pairs; pass kind='labeled' or kind='pairs' to say which"
    )


register_format(TuplesFormat())

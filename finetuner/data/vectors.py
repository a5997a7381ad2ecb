"""Vectors as data: embeddings computed elsewhere (an embedding API, a model serving an index) that `fit` tunes
an adapter on, with the identity as its backbone (the ``vectors`` model backend).

`VectorData` is `LabeledData` whose items are the rows of an ``(n, d)`` array (or of a memory-mapped ``.npy``
file, read row by row); `VectorPairs` is `PairData` of paired query and document rows. Both subset and hold out
like any data, lazily.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from finetuner.data.errors import DataError
from finetuner.data.records import DatasetItems, LabeledData, PairData, encode_labels

UNLABELLED = "unlabelled"


class VectorRows(DatasetItems):
    """The rows of a 2-D array as items: ``rows[i]`` is one float vector, read only when used (memory maps stay
    on disk); `subset` stays lazy.

    Example:
        >>> rows = VectorRows(np.eye(3, dtype=np.float32))
        >>> len(rows), rows.dim, rows.subset([2])[0].tolist()
        (3, 3, [0.0, 0.0, 1.0])
    """

    def __init__(self, array: np.ndarray, indices: Sequence[int] | None = None):
        super().__init__(array, indices)

    @property
    def dim(self) -> int:
        """The width ``d`` of every row."""
        return int(self.dataset.shape[1])

    def __getitem__(self, i: int) -> np.ndarray:
        return self.dataset[self.indices[i]]

    def subset(self, indices: Sequence[int]) -> VectorRows:
        return VectorRows(self.dataset, [self.indices[i] for i in indices])

    def row_name(self, i: int) -> str:
        """How item ``i`` is shown (reports): its row in the array the user gave, ``"row 17"``."""
        return f"row {self.indices[i]}"

    def to_array(self) -> np.ndarray:
        """The rows as one float32 ``(len(self), d)`` array (read into memory)."""
        return np.asarray(self.dataset[np.asarray(self.indices, dtype=np.int64)], dtype=np.float32)


def vector_rows(vectors: Any, what: str = "vectors") -> VectorRows:
    """``vectors`` (an ``(n, d)`` array, tensor or list of rows, or the path of a ``.npy`` file, memory-mapped) as
    `VectorRows`; a `DataError` names what is wrong with them.

    Example:
        >>> vector_rows([[0.0, 1.0], [1.0, 0.0]]).dim
        2
    """
    if isinstance(vectors, VectorRows):
        return vectors
    if isinstance(vectors, (str, os.PathLike)):
        if not str(vectors).endswith(".npy") or not os.path.isfile(vectors):
            raise DataError(f"{what}: {vectors} is not a .npy file; save the array with numpy.save(path, array)")
        array = np.load(vectors, mmap_mode="r")
    elif hasattr(vectors, "detach"):  # a torch tensor
        array = vectors.detach().cpu().float().numpy()
    else:
        array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{what} must be an (n, d) array with n, d >= 1, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{what} must hold real numbers, got dtype {array.dtype}")
    return VectorRows(array)


def vector_width(data: LabeledData | PairData) -> int | None:
    """The width ``d`` of the vectors ``data`` holds, or None when its items are no vectors (`VectorRows`).

    Example:
        >>> vector_width(VectorData(np.zeros((4, 8)), ["a", "b", "a", "b"]))
        8
    """
    items = data.items if isinstance(data, LabeledData) else data.queries
    return items.dim if isinstance(items, VectorRows) else None


class VectorData(LabeledData):
    """Vectors with class labels: `LabeledData` whose items are the rows of ``vectors``.

    Args:
        vectors: an ``(n, d)`` array (numpy, torch, nested lists) or the path of a ``.npy`` file, which is
            memory-mapped (rows are read when used).
        labels: one label per row, class names or ints; None: every row in one class ``"unlabelled"`` (enough to
            encode or index, not to train a metric loss).
        classes: names of int labels (``classes[label]``), as `encode_labels` takes them.

    Example:
        >>> data = VectorData(np.random.rand(6, 4), ["cat", "dog"] * 3)
        >>> data, data.dim
        (VectorData(6 vectors of 4 dimensions, 2 classes: cat, dog), 4)
    """

    def __init__(self, vectors: Any, labels: Sequence[Any] | None = None, classes: Sequence[str] | None = None):
        rows = vector_rows(vectors)
        if labels is None:
            encoded, names = [0] * len(rows), [UNLABELLED]
        else:
            if hasattr(labels, "tolist"):
                labels = labels.tolist()
            if len(labels) != len(rows):
                raise DataError(f"got {len(rows)} vectors but {len(labels)} labels: give one label per row")
            encoded, names = encode_labels(labels, classes)
        super().__init__(rows, encoded, names)

    @property
    def dim(self) -> int:
        return self.items.dim

    def __repr__(self) -> str:
        shown = ", ".join(self.classes[:5]) + (", ..." if len(self.classes) > 5 else "")
        return f"VectorData({len(self)} vectors of {self.dim} dimensions, {len(self.classes)} classes: {shown})"


class VectorPairs(PairData):
    """Paired vectors: ``documents[i]`` is relevant to ``queries[i]``; `PairData` whose items are rows.

    Args:
        queries: an ``(n, d)`` array or ``.npy`` path of query vectors.
        documents: the ``(n, d)`` document vectors, of the same width.
        scores: optional relevance score per pair.
        negatives: optional ``(n, d)`` hard negative per pair.

    Example:
        >>> pairs = VectorPairs(np.random.rand(5, 3), np.random.rand(5, 3))
        >>> pairs, pairs.dim
        (VectorPairs(5 pairs of 3-dimensional vectors), 3)
    """

    def __init__(
        self,
        queries: Any,
        documents: Any,
        scores: Sequence[float] | None = None,
        negatives: Any = None,
    ):
        rows = {"queries": vector_rows(queries, "queries"), "documents": vector_rows(documents, "documents")}
        if negatives is not None:
            rows["negatives"] = vector_rows(negatives, "negatives")
        widths = {name: part.dim for name, part in rows.items()}
        if len(set(widths.values())) > 1:
            raise DataError(f"queries, documents and negatives must have one width, got {widths}")
        super().__init__(rows["queries"], rows["documents"], scores, rows.get("negatives"))

    @property
    def dim(self) -> int:
        return self.queries.dim

    def __repr__(self) -> str:
        return f"VectorPairs({len(self)} pairs of {self.dim}-dimensional vectors)"

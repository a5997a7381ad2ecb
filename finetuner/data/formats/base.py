"""The `DataFormat` contract, `DATA_FORMATS` (the registry the format modules of this folder fill), the kinds of
data a source can hold, and the checks every format shares."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from finetuner.core.registry import Registry
from finetuner.data.errors import DataError
from finetuner.data.records import LabeledData, PairData

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DataKind(str, Enum):
    """What a source holds, as the training needs it.

    ``AUTO`` infers the kind from the source and raises a ``DataError`` when that is ambiguous; the others
    are requests that the loaded data must meet (``load_data`` raises when it cannot).

    Example:
        >>> DataKind("pairs") is DataKind.PAIRS, [kind.value for kind in DataKind][1:]
        (True, ['labeled', 'pairs', 'scored_pairs', 'triplets'])
    """

    AUTO = "auto"
    LABELED = "labeled"  # items with class labels: LabeledData
    PAIRS = "pairs"  # (query, document) pairs, scores and hard negatives kept when present: PairData
    SCORED_PAIRS = "scored_pairs"  # pairs with a relevance score each: PairData with scores
    TRIPLETS = "triplets"  # pairs with a hard negative each: PairData with negatives

    @classmethod
    def parse(cls, kind: DataKind | str) -> DataKind:
        """``kind`` as a ``DataKind``; a ``ValueError`` lists the accepted names.

        Example:
            >>> DataKind.parse("triplets")
            <DataKind.TRIPLETS: 'triplets'>
        """
        try:
            return cls(kind)
        except ValueError:
            names = ", ".join(repr(member.value) for member in cls)
            raise ValueError(f"kind must be one of {names}, got {kind!r}") from None

    @property
    def is_pairs(self) -> bool:
        """Whether this kind is read into ``PairData``."""
        return self in (DataKind.PAIRS, DataKind.SCORED_PAIRS, DataKind.TRIPLETS)


class DataFormat(ABC):
    """One way data is held (a file type, an in-memory type); ``load_data`` asks each format in turn.

    Subclasses set ``name``, ``description`` and ``priority`` (the order ``load_data`` asks formats in, lowest
    first: the built-ins use 10 to 100, so the default 0 is asked before them) and implement ``can_read``
    (cheap: look at the type, the suffix; never read the data) and ``read``. Tabular formats set
    ``tabular = True``, build a ``finetuner.data.formats.Table`` and return ``table_to_data(table, columns,
    kind)``, which gives them the ``columns=`` mapping, the default column names and the kind rules for free.

    Example:
        >>> import numpy as np
        >>> class NumpyPairs(DataFormat):  # an (N, 2) array of strings: queries, documents
        ...     name, description = "numpy_pairs", "an (N, 2) numpy array of (query, document) strings"
        ...     def can_read(self, source):
        ...         return isinstance(source, np.ndarray) and source.ndim == 2 and source.shape[1] == 2
        ...     def read(self, source, columns, kind):
        ...         return PairData(source[:, 0].tolist(), source[:, 1].tolist())
        >>> NumpyPairs().read(np.array([["q", "d"]]), {}, DataKind.AUTO)
        PairData(1 pairs, no scores)
    """

    name: ClassVar[str]
    description: ClassVar[str]
    priority: ClassVar[int] = 0
    tabular: ClassVar[bool] = False

    @abstractmethod
    def can_read(self, source: Any) -> bool:
        """Whether ``source`` is held in this format."""

    @abstractmethod
    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        """Read ``source``; ``columns`` maps roles to column names (tabular formats only), ``kind`` is the request.

        Raises:
            DataError: the source is unreadable, empty, or does not hold the requested kind.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# name -> format; every module of this folder is imported on the first lookup (its formats register themselves)
DATA_FORMATS: Registry[DataFormat] = Registry("data format", "finetuner.data.formats", base=DataFormat)


def register_format(data_format: DataFormat) -> DataFormat:
    """Make ``load_data`` read a new kind of source, asked in order of ``data_format.priority`` (the default 0:
    before the built-in formats; the latest registered first among equals).

    Args:
        data_format: an instance of a `DataFormat` subclass.

    Returns:
        ``data_format``, so the call can wrap the instance.

    Raises:
        TypeError: not a `DataFormat` instance.
        ValueError: another format has this ``name``.

    Example:
        >>> class Lines(FileFormat):  # a .txt of "text<TAB>label" lines
        ...     name, description, suffixes = "tsv_lines", "a .txt of text<TAB>label lines", (".txt",)
        ...     def read(self, source, columns, kind):
        ...         from finetuner.data import LabeledData, encode_labels
        ...         texts, raw = zip(*(line.rstrip("\\n").split("\\t") for line in open(source)))
        ...         return LabeledData(list(texts), *encode_labels(raw))
        >>> register_format(Lines())  # doctest: +SKIP
        Lines()
    """
    if isinstance(data_format, type):
        raise TypeError(f"register_format takes a DataFormat instance, got the class {data_format.__name__}")
    return DATA_FORMATS.register(data_format.name, data_format)


def list_formats() -> list[DataFormat]:
    """The formats ``load_data`` asks, in order: by ``priority``, the latest registered first among equals.

    Example:
        >>> [data_format.name for data_format in list_formats()][:3]
        ['named', 'image_folder', 'csv']
    """
    formats = DATA_FORMATS.values()
    order = sorted(range(len(formats)), key=lambda i: (formats[i].priority, -i))
    return [formats[i] for i in order]


class FileFormat(DataFormat):
    """A format read from a file, recognised by its suffix (``.csv``, ``.jsonl``, ...)."""

    suffixes: ClassVar[tuple[str, ...]]

    def can_read(self, source: Any) -> bool:
        return (
            isinstance(source, (str, os.PathLike))
            and Path(source).suffix.lower() in self.suffixes
            and Path(source).is_file()
        )


def is_image_path(value: Any) -> bool:
    """A string or path whose suffix is an image extension (the file need not exist).

    Example:
        >>> is_image_path("cats/1.JPG"), is_image_path("a sentence.")
        (True, False)
    """
    return isinstance(value, (str, os.PathLike)) and Path(value).suffix.lower() in IMAGE_EXTENSIONS


def check_kind(data: LabeledData | PairData, kind: DataKind, source: str) -> None:
    """Raise a ``DataError`` unless ``data`` is of the requested ``kind`` (``AUTO`` accepts both).

    Args:
        data: what a format read.
        kind: the request.
        source: names the source in the message.

    Example:
        >>> check_kind(PairData(["q"], ["d"]), DataKind.SCORED_PAIRS, "pairs.csv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetuner.data.errors.DataError: kind='scored_pairs' was asked for, but pairs.csv holds pairs without scores...
    """
    if kind is DataKind.AUTO:
        return
    if isinstance(data, LabeledData):
        if kind is DataKind.LABELED:
            return
        held = f"labelled items ({len(data.classes)} classes)"
        fix = "give (query, document) pairs: query/document columns or a list of (query, document) tuples"
    elif kind is DataKind.LABELED:
        held, fix = "pairs", "give items with labels: an item and a label column, or a list of (item, label) tuples"
    elif kind is DataKind.SCORED_PAIRS and data.scores is None:
        held, fix = "pairs without scores", "add a score column (or (query, document, score) tuples)"
    elif kind is DataKind.TRIPLETS and data.negatives is None:
        held, fix = "pairs without hard negatives", "add a negative column (or (query, document, negative) tuples)"
    else:
        return
    raise DataError(f"kind={kind.value!r} was asked for, but {source} holds {held}: {fix}, or ask for another kind")


def describe_source(source: Any) -> str:
    """A short name for ``source`` in messages: its path, or its type.

    Example:
        >>> describe_source("data/train.csv"), describe_source([("a", "b")])
        ('data/train.csv', 'the list')
    """
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"the {type(source).__name__}"

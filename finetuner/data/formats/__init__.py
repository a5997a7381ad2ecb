"""Data formats: how each kind of source is read into ``LabeledData`` or ``PairData``.

``load_data`` asks the formats in order (formats added with `register_format` first) and reads the source
with the first whose ``can_read`` says yes. Adding a format is one module with a `DataFormat` subclass (a
tabular one builds a `Table` and calls `table_to_data`), one line in ``BUILT_IN`` below, and its test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import (
    IMAGE_EXTENSIONS,
    DataFormat,
    DataKind,
    FileFormat,
    check_kind,
    describe_source,
    is_image_path,
)
from finetuner.data.formats.csv_file import CsvFormat
from finetuner.data.formats.dataframe import DataFrameFormat
from finetuner.data.formats.dicts import DictsFormat
from finetuner.data.formats.hf_datasets import HFDatasetFormat
from finetuner.data.formats.image_folder import ImageFolderFormat
from finetuner.data.formats.jsonl import JsonlFormat
from finetuner.data.formats.named import NamedFormat
from finetuner.data.formats.parquet import ParquetFormat
from finetuner.data.formats.table import COLUMN_KEYS, DEFAULT_COLUMNS, Table, table_to_data
from finetuner.data.formats.torch_dataset import TorchDatasetFormat
from finetuner.data.formats.tuples import TuplesFormat

# Asked in this order; the embedded names come before paths so that "fortunes" never means a local folder.
BUILT_IN: tuple[DataFormat, ...] = (
    NamedFormat(),
    ImageFolderFormat(),
    CsvFormat(),
    JsonlFormat(),
    ParquetFormat(),
    DataFrameFormat(),
    HFDatasetFormat(),
    TorchDatasetFormat(),
    DictsFormat(),
    TuplesFormat(),
)
_registered: list[DataFormat] = []


def register_format(data_format: DataFormat) -> DataFormat:
    """Make ``load_data`` read a new kind of source: ``data_format`` is asked before the built-in formats.

    Args:
        data_format: an instance of a `DataFormat` subclass.

    Returns:
        ``data_format``, so the call can wrap the instance.

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
    if not isinstance(data_format, DataFormat):
        raise TypeError(f"register_format takes a DataFormat instance, got {data_format!r}")
    _registered.insert(0, data_format)
    return data_format


def list_formats() -> list[DataFormat]:
    """The formats ``load_data`` asks, in order.

    Example:
        >>> [data_format.name for data_format in list_formats()][:3]
        ['named', 'image_folder', 'csv']
    """
    return [*_registered, *BUILT_IN]


def find_format(source: Any) -> DataFormat:
    """The first format that can read ``source``.

    Raises:
        DataError: no format can: a missing path, an unsupported file type or object (the message lists what is
            supported).

    Example:
        >>> find_format("fortunes").name, find_format([{"text": "a", "label": "x"}]).name
        ('named', 'dicts')
    """
    formats = list_formats()
    found = next((data_format for data_format in formats if data_format.can_read(source)), None)
    if found is not None:
        return found
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DataError(f"no such file or folder: {path}")
        suffixes = sorted({suffix for f in formats if isinstance(f, FileFormat) for suffix in f.suffixes})
        raise DataError(
            f"cannot load data from {path}: expected a folder with one subfolder per class, or a file ending in "
            f"{', '.join(suffixes)}"
        )
    raise DataError(
        f"cannot load data from {describe_source(source)}: expected "
        + "; ".join(data_format.description for data_format in formats)
    )


__all__ = [
    "BUILT_IN",
    "COLUMN_KEYS",
    "DEFAULT_COLUMNS",
    "IMAGE_EXTENSIONS",
    "CsvFormat",
    "DataFormat",
    "DataFrameFormat",
    "DataKind",
    "DictsFormat",
    "FileFormat",
    "HFDatasetFormat",
    "ImageFolderFormat",
    "JsonlFormat",
    "NamedFormat",
    "ParquetFormat",
    "Table",
    "TorchDatasetFormat",
    "TuplesFormat",
    "check_kind",
    "describe_source",
    "find_format",
    "is_image_path",
    "list_formats",
    "register_format",
    "table_to_data",
]

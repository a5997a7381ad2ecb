"""Data formats: how each kind of source is read into ``LabeledData`` or ``PairData``.

``load_data`` asks the formats in ``priority`` order (formats added with `register_format` first) and reads the
source with the first whose ``can_read`` says yes. Adding a format is one module in this folder with a `DataFormat`
subclass that calls `register_format` (a tabular one builds a `Table` and calls `table_to_data`), and its test:
`DATA_FORMATS` imports every module of the folder on its first lookup. The imports below only make the built-in
classes importable from the package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import (
    DATA_FORMATS,
    IMAGE_EXTENSIONS,
    DataFormat,
    DataKind,
    FileFormat,
    check_kind,
    describe_source,
    is_image_path,
    list_formats,
    register_format,
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
    "DATA_FORMATS",
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

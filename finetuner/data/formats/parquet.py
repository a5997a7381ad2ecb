"""Parquet files, read with pyarrow one needed column at a time, in record batches (never a whole column as an Arrow
table next to its Python values)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataKind, FileFormat, register_format
from finetuner.data.formats.table import Table, table_to_data
from finetuner.data.records import LabeledData, PairData

BATCH_ROWS = 65536


class ParquetFormat(FileFormat):
    """A ``.parquet`` file (e.g. written by pandas or ``datasets``); only the columns used are read, and image
    paths are relative to the file's folder.

    Example:
        >>> columns = {"query": "question", "document": "answer"}
        >>> ParquetFormat().read("train.parquet", columns, DataKind.AUTO)  # doctest: +SKIP
        PairData(1000 pairs, no scores)
    """

    name = "parquet"
    priority = 50
    description = "a .parquet file"
    tabular = True
    suffixes = (".parquet", ".pq")

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        import pyarrow
        import pyarrow.parquet as pq

        path = Path(source)
        try:
            file = pq.ParquetFile(path)
        except (OSError, pyarrow.ArrowException) as error:
            raise DataError(f"cannot read Parquet file {path}: {error}") from error

        def read_column(name: str) -> list:
            values: list = []
            for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=[name]):
                values += batch.column(0).to_pylist()
            return values

        table = Table(str(path), list(file.schema_arrow.names), file.metadata.num_rows, read_column, path.parent)
        return table_to_data(table, columns, kind)


register_format(ParquetFormat())

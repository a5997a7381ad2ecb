"""pandas DataFrames, one row per item or pair."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from finetuner.data.formats.base import DataFormat, DataKind, register_format
from finetuner.data.formats.table import Table, table_to_data
from finetuner.data.records import LabeledData, PairData


class DataFrameFormat(DataFormat):
    """A ``pandas.DataFrame``; image paths are taken as given (relative to the working directory).

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "score": [0.9, 0.1]})
        >>> DataFrameFormat().read(frame, {}, DataKind.AUTO)
        PairData(2 pairs, with scores)
    """

    name = "dataframe"
    priority = 60
    description = "a pandas DataFrame"
    tabular = True

    def can_read(self, source: Any) -> bool:
        pandas = sys.modules.get("pandas")  # a DataFrame can only exist once pandas is imported
        return pandas is not None and isinstance(source, pandas.DataFrame)

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        by_name = {str(column): column for column in source.columns}
        table = Table("the DataFrame", list(by_name), len(source), lambda name: source[by_name[name]].tolist())
        return table_to_data(table, columns, kind)


register_format(DataFrameFormat())

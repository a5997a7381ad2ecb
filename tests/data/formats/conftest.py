"""Write one table in every tabular format: CSV, JSONL, Parquet, DataFrame, list of dicts, datasets.Dataset."""

import csv
import json
from pathlib import Path

import pytest

TABULAR = ("csv", "jsonl", "parquet", "dataframe", "dicts", "hf_dataset")


def make_table(fmt: str, columns: dict[str, list], folder: Path):
    """The same rows as a source of format ``fmt`` (files are written into ``folder``)."""
    names = list(columns)
    rows = [dict(zip(names, values)) for values in zip(*columns.values())]
    if fmt == "csv":
        path = folder / "data.csv"
        with path.open("w", newline="") as file:
            csv.writer(file).writerows([names] + [list(row.values()) for row in rows])
        return path
    if fmt == "jsonl":
        path = folder / "data.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / "data.parquet"
        pq.write_table(pa.table(columns), path)
        return path
    if fmt == "dataframe":
        import pandas as pd

        return pd.DataFrame(columns)
    if fmt == "dicts":
        return rows
    if fmt == "hf_dataset":
        import datasets

        return datasets.Dataset.from_dict(columns)
    raise ValueError(fmt)


@pytest.fixture(params=TABULAR)
def tabular(request, tmp_path):
    """A function ``columns -> source`` for one tabular format."""
    return lambda columns: make_table(request.param, columns, tmp_path)

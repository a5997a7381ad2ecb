"""File formats keep in memory only the columns the data needs: a large unused column is streamed past."""

import tracemalloc

import pytest

from finetuner.data import load_data

from .conftest import make_table


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_unused_columns_are_not_held_in_memory(tmp_path, fmt):
    rows = 1000
    notes = [f"{i:04d}" + "x" * 8000 for i in range(rows)]  # 8 MB of text that no role uses
    columns = {"text": [f"item {i}" for i in range(rows)], "label": [str(i % 7) for i in range(rows)], "notes": notes}
    path = make_table(fmt, columns, tmp_path)
    del notes, columns
    tracemalloc.start()
    try:
        data = load_data(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) == rows and data.items[3] == "item 3"
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB while reading 8 MiB of unused text"

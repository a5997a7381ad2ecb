"""Parquet: read with pyarrow, only the columns used; paths relative to the file."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finetuner.data import DataError, load_data


def test_reads_only_the_mapped_columns_and_resolves_image_paths(image_folder):
    path = image_folder / "data.parquet"
    blobs = pa.array([{"x": 1}, {"x": 2}])  # an unused nested column
    pq.write_table(pa.table({"file": ["cat/a.jpg", "fish/x.webp"], "y": [3, 1], "blob": blobs}), path)
    data = load_data(path, columns={"image": "file", "label": "y"})
    assert data.items == [str(image_folder / "cat/a.jpg"), str(image_folder / "fish/x.webp")]
    assert (data.labels, data.classes) == ([1, 0], ["1", "3"])


def test_corrupt_parquet_raises(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read Parquet file .*broken.parquet"):
        load_data(path)

"""Vectors in tables (DataFrame, Parquet, datasets) and on the command line (`finetuner fit vectors.npy --labels`)."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from finetuner.cli import app
from finetuner.data import DataError, VectorData, VectorPairs, load_data

runner = CliRunner()


@pytest.fixture
def table(clusters):
    vectors, labels = clusters
    return pd.DataFrame({"emb": list(vectors), "topic": labels})


def test_a_column_of_embeddings_reads_as_vector_data(table, clusters, tmp_path):
    vectors, labels = clusters
    data = load_data(table, columns={"vector": "emb", "label": "topic"})
    assert isinstance(data, VectorData) and data.dim == 16 and len(data) == len(vectors)
    assert np.array_equal(np.stack([data.items[i] for i in range(3)]), vectors[:3])
    assert [data.classes[label] for label in data.labels[:3]] == labels[:3]
    table.rename(columns={"emb": "embedding", "topic": "label"}).to_parquet(tmp_path / "v.parquet")
    from_file = load_data(str(tmp_path / "v.parquet"))  # default column names: embedding, label
    assert isinstance(from_file, VectorData) and np.allclose(from_file.items[5], vectors[5])


def test_a_datasets_column_of_lists_reads_as_vector_data(table, clusters):
    import datasets

    rows = datasets.Dataset.from_dict({"emb": [list(map(float, v)) for v in clusters[0]], "topic": clusters[1]})
    data = load_data(rows, columns={"vector": "emb", "label": "topic"})
    assert isinstance(data, VectorData) and np.allclose(data.items[7], clusters[0][7], atol=1e-6)


def test_pairs_of_vector_columns_read_as_vector_pairs(distorted_pairs):
    queries, documents = distorted_pairs
    data = load_data(pd.DataFrame({"query": list(queries), "document": [list(d) for d in documents]}))
    assert isinstance(data, VectorPairs) and data.dim == 16 and np.allclose(data.documents[3], documents[3])


def test_vectors_of_another_width_are_named_by_row(table):
    table.at[4, "emb"] = table.at[4, "emb"][:8]
    with pytest.raises(DataError, match="row 4: 'emb' has 8 numbers, the first row 16"):
        load_data(table, columns={"vector": "emb", "label": "topic"})


def test_the_cli_fits_a_npy_file_with_its_labels(clusters, tmp_path):
    vectors, labels = clusters
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "labels.txt").write_text("\n".join(labels))
    out = tmp_path / "out"
    result = runner.invoke(app, ["fit", str(tmp_path / "v.npy"), "--labels", str(tmp_path / "labels.txt"),
                                 "--epochs", "1", "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    import finetuner

    model = finetuner.load(out / "model")
    assert model.spec["backbone"] == {"source": "vectors", "dim": 16}
    assert model.encode(vectors[:4]).shape[0] == 4


def test_the_cli_says_what_a_vectors_file_needs(clusters, tmp_path):
    np.save(tmp_path / "v.npy", clusters[0])
    result = runner.invoke(app, ["fit", str(tmp_path / "v.npy")])
    assert result.exit_code != 0 and "--labels" in result.output
    (tmp_path / "wide.csv").write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["fit", str(tmp_path / "v.npy"), "--labels", str(tmp_path / "wide.csv")])
    assert result.exit_code == 1 and "none is named 'label'" in result.output
    result = runner.invoke(app, ["fit", "test_cnn", "data", "--labels", "labels.txt"])
    assert result.exit_code != 0 and ".npy" in result.output

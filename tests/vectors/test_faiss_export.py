"""A linear adapter exported as a faiss index with the adapter as its pre-transform: raw vectors in, the same
neighbours and scores as `encode` out."""

import json

import faiss
import numpy as np
import pytest

import finetuner
from finetuner.data import VectorData, VectorPairs


def test_labelled_adapter_index_searches_raw_vectors_like_encode(clusters, tmp_path):
    vectors, labels = clusters
    run = finetuner.fit(train_data=VectorData(vectors, labels), head="linear", output_dim=8, epochs=1,
                        cache_dir=tmp_path, verbose=False)
    folder = run.model.export(tmp_path / "faiss", format="faiss")
    index = faiss.read_index(str(folder / "index.faiss"))
    index.add(vectors)
    scores, ids = index.search(vectors[:20], 5)
    encoded = run.model.encode(vectors)
    expected = encoded[:20] @ encoded.T
    assert np.allclose(scores, np.take_along_axis(expected, ids, axis=1), atol=1e-4)
    assert np.allclose(scores[:, 0], expected.max(1), atol=1e-5)  # the nearest neighbour found is encode's
    assert json.loads((folder / "faiss.json").read_text())["maps"] == "queries and documents"


def test_query_adapter_index_keeps_documents_and_maps_queries(distorted_pairs, tmp_path):
    queries, documents = distorted_pairs
    run = finetuner.fit(None, VectorPairs(queries, documents), adapter="query", head="linear", epochs=2,
                        learning_rate=1e-2, cache_dir=tmp_path, verbose=False)
    folder = run.model.export(tmp_path / "faiss", format="faiss")
    index = faiss.read_index(str(folder / "index.faiss"))
    index.add(documents)  # the documents as they are: the index only normalises them
    transform = faiss.read_VectorTransform(str(folder / "query_transform.faiss"))
    mapped = transform.apply(np.ascontiguousarray(queries[:30]))
    faiss.normalize_L2(mapped)
    scores, ids = index.search(mapped, 3)
    expected = run.model.encode_query(queries[:30]) @ run.model.encode_document(documents).T
    assert np.allclose(scores, np.take_along_axis(expected, ids, axis=1), atol=1e-4)
    assert np.allclose(scores[:, 0], expected.max(1), atol=1e-5)


def test_a_head_that_is_not_linear_is_refused(clusters, tmp_path):
    vectors, labels = clusters
    model = finetuner.build_model("vectors:16", output_dim=8, head="projection")
    with pytest.raises(ValueError, match="not a linear map"):
        model.export(tmp_path / "faiss", format="faiss")

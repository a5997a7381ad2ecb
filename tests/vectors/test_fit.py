import numpy as np
import pytest
import torch

import finetuner
from finetuner.config import ModelConfig
from finetuner.data import VectorData, VectorPairs
from finetuner.training.pair_losses import CorpusRankingLoss


def _unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_fit_on_labelled_vectors_needs_no_model(clusters, tmp_path):
    vectors, labels = clusters
    run = finetuner.fit(train_data=VectorData(vectors, labels), epochs=2, cache_dir=tmp_path, verbose=False,
                        output_dir=tmp_path / "run")
    assert run.model.spec["backbone"] == {"source": "vectors", "dim": 16} and run.model.embedding_dim() == 16
    after = run.metrics["after"]
    assert "new/map@r" in after and "seen/map@r" in after  # classes held out, as for any labelled data
    guard = run.metrics["selection"]
    assert after[guard["guard_key"]] >= guard["guard_floor"]  # the guard: held-out classes no worse
    assert (tmp_path / "run" / "report" / "report.html").is_file()
    loaded = finetuner.load(tmp_path / "run" / "model")
    assert np.array_equal(loaded.encode(vectors[:5]), run.model.encode(vectors[:5]))


def test_a_query_side_adapter_maps_queries_and_leaves_documents(distorted_pairs, tmp_path):
    queries, documents = distorted_pairs
    run = finetuner.fit(None, VectorPairs(queries, documents), adapter="query", head="linear", epochs=4,
                        learning_rate=1e-2, cache_dir=tmp_path, verbose=False)
    model = run.model
    assert model.adapter == "query"
    assert run.metrics["after"]["recall@1"] > run.metrics["before"]["recall@1"]
    assert np.allclose(model.encode_document(documents[:8]), _unit(documents[:8]), atol=1e-6)
    assert not np.allclose(model.encode_query(queries[:8]), _unit(queries[:8]), atol=1e-3)
    model.save(tmp_path / "adapter")
    loaded = finetuner.load(tmp_path / "adapter")
    assert loaded.adapter == "query"
    assert np.array_equal(loaded.encode_query(queries[:8]), model.encode_query(queries[:8]))
    assert np.array_equal(loaded.encode_document(documents[:8]), model.encode_document(documents[:8]))
    loaded.build_index(documents[:50])
    assert loaded.search(queries[:1], k=1)[0][0]["id"] in range(50)


def test_adapter_query_on_untrained_start_is_the_raw_vectors(distorted_pairs, tmp_path):
    queries, documents = distorted_pairs
    pairs = VectorPairs(queries[:200], documents[:200])
    run = finetuner.fit(train_data=pairs, adapter="query", epochs=1, learning_rate=1e-9, cache_dir=tmp_path,
                        verbose=False)  # residual head, no real step: the identity
    assert np.allclose(run.model.encode_query(queries[:5]), _unit(queries[:5]), atol=1e-4)


def test_adapter_query_needs_pairs_and_a_frozen_backbone(clusters, tmp_path):
    vectors, labels = clusters
    with pytest.raises(ValueError, match="needs \\(query, document\\) pairs"):
        finetuner.fit(train_data=VectorData(vectors, labels), adapter="query", epochs=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="adapter must be .both. or .query., got .documents."):
        ModelConfig(adapter="documents")


def test_fit_without_a_model_needs_vectors(tmp_path):
    with pytest.raises(ValueError, match="fit needs a model unless"):
        finetuner.fit(train_data=[("a", "b"), ("c", "d"), ("e", "f")], cache_dir=tmp_path)


def test_fit_adapter_query_ranks_among_all_training_documents(distorted_pairs, tmp_path):
    queries, documents = distorted_pairs
    loss = CorpusRankingLoss()
    run = finetuner.fit(None, VectorPairs(queries, documents), adapter="query", head="linear", loss=loss, epochs=2,
                        learning_rate=1e-2, cache_dir=tmp_path, verbose=False)
    # the corpus: the training pairs' documents (fit held 10 % out for validation), as given, normalised
    trained = len(queries) - round(0.1 * len(queries))
    assert loss.documents.shape == (trained, documents.shape[1])
    rows = torch.from_numpy(documents).double()
    distances = torch.cdist(loss.documents.double(), torch.nn.functional.normalize(rows, dim=1))
    assert bool((distances.min(dim=1).values < 1e-6).all())
    assert run.metrics["after"]["recall@1"] > run.metrics["before"]["recall@1"]


def test_adapter_query_uses_it_by_default_and_leaves_documents_bit_for_bit(distorted_pairs, tmp_path):
    queries, documents = distorted_pairs
    run = finetuner.fit(None, VectorPairs(queries, documents), adapter="query", head="linear", epochs=2,
                        learning_rate=1e-2, cache_dir=tmp_path, verbose=False)
    assert run.model.card_data.loss == "CorpusRankingLoss"
    assert np.array_equal(run.model.encode_document(documents, normalize=False), documents)
    assert not np.allclose(run.model.encode_query(queries, normalize=False), queries, atol=1e-3)
    both = finetuner.fit(None, VectorPairs(queries, documents), head="linear", epochs=1, cache_dir=tmp_path,
                         verbose=False)
    assert both.model.card_data.loss == "MultipleNegativesRankingLoss"  # documents mapped too: in-batch negatives


def test_it_is_refused_where_documents_are_mapped_too(distorted_pairs, tmp_path):
    queries, documents = distorted_pairs
    with pytest.raises(ValueError, match="CorpusRankingLoss ranks queries among fixed documents.*adapter='query'"):
        finetuner.fit(None, VectorPairs(queries, documents), loss="CorpusRankingLoss", epochs=1, cache_dir=tmp_path,
                      verbose=False)

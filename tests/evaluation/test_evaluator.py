"""Evaluator: one evaluation path for raw items, precomputed outputs, index data, pairs and classifiers."""

import numpy as np
import pytest

from finetuner.data import LabeledData, PairData
from finetuner.evaluation import Evaluator, evaluate_data, retrieval_metrics


def identity(items):
    return np.asarray(items, dtype=np.float32)


def test_encode_and_precomputed_outputs_give_the_same_metrics():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((20, 4)).astype(np.float32).tolist()
    data = LabeledData(items, [i % 3 for i in range(20)], ["a", "b", "c"])
    evaluator = Evaluator(data, k=(1, 2))
    encoded = evaluator(identity)
    assert encoded == evaluator.from_outputs({"items": identity(items)})
    assert encoded == retrieval_metrics(identity(items), data.labels, k=(1, 2))
    assert evaluator.primary_metric == "map@r"


def test_index_labels_are_matched_by_class_name():
    query = LabeledData([[1, 0], [0, 1]], [0, 1], ["cat", "dog"])
    index = LabeledData([[0, 1.0], [1, 0.1]], [0, 1], ["dog", "cat"])  # other class order
    assert Evaluator(query, index, k=(1,))(identity)["recall@1"] == 1.0


def test_pairs_rank_each_query_against_its_document():
    pairs = PairData([[1, 0], [0, 1]], [[1, 0.1], [0.1, 1]])
    metrics = evaluate_data(identity, pairs, k=(1,))
    assert metrics["recall@1"] == 1.0 and Evaluator(pairs).primary_metric == "mrr"


def test_classification_aligns_labels_by_class_name_and_counts_unknown_classes():
    # The model knows classes (b, a); the eval set numbers them (a, b) and has an unknown class c.
    data = LabeledData(["x1", "x2", "x3"], [0, 1, 2], ["a", "b", "c"])
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])  # predicts a, b, b in the model's numbering
    metrics = Evaluator(data, task="classification", classes=["b", "a"]).from_outputs({"items": logits})
    assert metrics["accuracy"] == pytest.approx(2 / 3)  # the c item is an error: the model cannot name it
    assert metrics["known/accuracy"] == 1.0 and metrics["unknown_class_items"] == 1.0


def test_index_with_pairs_is_rejected():
    with pytest.raises(ValueError, match="labelled queries"):
        Evaluator(PairData([[1, 0]], [[1, 0]]), LabeledData([[1, 0]], [0], ["a"]))

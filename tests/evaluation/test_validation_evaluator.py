"""ValidationEvaluator: seen/ and new/ items are queries against the whole set, checked against a naive loop."""

import numpy as np
import pytest

from finetuner.data import LabeledData
from finetuner.evaluation import ValidationEvaluator


def naive_recall_at_1(vectors, labels, rows):
    """For each query row: is its nearest other item (cosine, ties by index) of the same class?"""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = []
    for i in rows:
        scores = unit @ unit[i]
        scores[i] = -np.inf
        hits.append(labels[int(np.argmax(scores))] == labels[i])
    return float(np.mean(hits))


def test_a_new_class_item_nearest_an_old_class_is_a_miss():
    vectors = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0.2, 1], [0.1, 1]], dtype=np.float32)
    labels = [0, 0, 1, 1, 1]  # class "new" has one item (row 2) sitting on top of class "old"
    data = LabeledData(vectors.tolist(), labels, ["old", "new"])
    evaluator = ValidationEvaluator(data, train_classes=["old"], k=(1,))
    metrics = evaluator(lambda items: np.asarray(items, dtype=np.float32))
    assert metrics["new/recall@1"] == pytest.approx(naive_recall_at_1(vectors, np.array(labels), [2, 3, 4]))
    assert metrics["new/recall@1"] < 1.0  # among the new class alone it would be 1.0
    assert metrics["seen/recall@1"] == pytest.approx(naive_recall_at_1(vectors, np.array(labels), [0, 1]))
    assert evaluator.guard_key == "new/map@r" and evaluator.selection_key == "seen/map@r"


def test_no_parts_without_both_kinds_of_classes():
    data = LabeledData([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], [0, 0, 1, 1], ["a", "b"])
    evaluator = ValidationEvaluator(data, train_classes=["a", "b"], k=(1,))
    assert evaluator.guard_key is None and evaluator.selection_key == "map@r"
    assert not any(key.startswith(("seen/", "new/")) for key in evaluator(lambda x: np.asarray(x, np.float32)))


def test_distractors_join_the_index_of_new_class_queries_only():
    vectors = np.array([[1, 0], [0.9, 0.1], [0.3, 1], [0.2, 1]], dtype=np.float32)
    labels = [0, 0, 1, 1]
    data = LabeledData(vectors.tolist(), labels, ["old", "new"])
    evaluator = ValidationEvaluator(data, train_classes=["old"], k=(1,))
    outputs = {"items": vectors}
    alone = evaluator.from_outputs(outputs)
    distractor = np.array([[0.25, 1]], dtype=np.float32)  # an old-class training item right among the new ones
    crowded = evaluator.from_outputs(outputs, (distractor, np.array([0])))
    assert alone["new/recall@1"] == 1.0 and crowded["new/recall@1"] == 0.0  # both new items now find it first
    assert crowded["seen/recall@1"] == alone["seen/recall@1"]  # seen queries never search training items
    everything = np.concatenate([vectors, distractor])
    assert crowded["new/recall@1"] == naive_recall_at_1(everything, np.array(labels + [0]), [2, 3])

"""Per-class figures (``class/<name>/...``) against a brute-force loop over a handful of hand-made embeddings."""

import numpy as np
import pytest

from finetuner.data import LabeledData
from finetuner.evaluation import Evaluator, ValidationEvaluator, classification_metrics, retrieval_metrics

# three classes; class 2 ("T-shirt/top", a name with a slash) has an item sitting among class 0
VECTORS = np.array(
    [[1, 0], [0.9, 0.2], [0.8, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7], [0.6, 0.8], [0.95, 0.1], [-1, 0.2]],
    dtype=np.float64,
)
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])  # class 3 has one item: no relevant candidate, no figure
NAMES = ["coat", "bag", "T-shirt/top", "lone"]


def brute_force(queries, q_labels, index, i_labels, exclude_self):
    """Per query label: the mean recall@1 and MAP@R, by sorting every candidate (cosine, ties by index)."""
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    queries, index = unit(queries.astype(np.float64)), unit(index.astype(np.float64))
    per_class: dict[int, list[tuple[float, float]]] = {}
    for qi, (query, label) in enumerate(zip(queries, q_labels)):
        candidates = [j for j in range(len(index)) if not (exclude_self and j == qi)]
        ranked = sorted(candidates, key=lambda j: (-float(index[j] @ query), j))
        rel = [int(i_labels[j] == label) for j in ranked]
        r = sum(rel)
        if r == 0:
            continue
        map_r = sum(sum(rel[: i + 1]) / (i + 1) for i in range(r) if rel[i]) / r
        per_class.setdefault(int(label), []).append((float(rel[0]), map_r))
    return {c: tuple(float(np.mean(v)) for v in zip(*rows)) for c, rows in per_class.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_retrieval_per_class_matches_brute_force(dtype):
    got = retrieval_metrics(VECTORS.astype(dtype), LABELS, k=(1, 3), per_class=True)
    want = brute_force(VECTORS, LABELS, VECTORS, LABELS, exclude_self=True)
    assert sorted(want) == [0, 1, 2]
    for label, (recall, map_r) in want.items():
        assert got[f"class/{label}/recall@1"] == pytest.approx(recall, abs=1e-6)
        assert got[f"class/{label}/map@r"] == pytest.approx(map_r, abs=1e-6)
    assert not any(key.startswith("class/3/") for key in got)  # the lone item has no relevant candidate
    plain = retrieval_metrics(VECTORS.astype(dtype), LABELS, k=(1, 3))
    assert {k: v for k, v in got.items() if not k.startswith("class/")} == plain  # the headline is unchanged


def test_per_class_survives_query_blocks():
    one_block = retrieval_metrics(VECTORS, LABELS, k=1, per_class=True)
    many = retrieval_metrics(VECTORS, LABELS, k=1, per_class=True, chunk_size=2)
    assert many == pytest.approx(one_block)


def test_evaluator_names_classes_and_keeps_two_figures():
    data = LabeledData(VECTORS.tolist(), LABELS.tolist(), NAMES)
    metrics = Evaluator(data, k=(1, 5), per_class=True)(lambda items: np.asarray(items, dtype=np.float32))
    want = brute_force(VECTORS, LABELS, VECTORS, LABELS, exclude_self=True)
    per_class = {k: v for k, v in metrics.items() if k.startswith("class/")}
    assert set(per_class) == {f"class/{NAMES[c]}/{m}" for c in want for m in ("recall@1", "map@r")}
    assert metrics["class/T-shirt/top/map@r"] == pytest.approx(want[2][1], abs=1e-6)


def test_validation_parts_give_seen_and_new_classes_with_distractors():
    data = LabeledData(VECTORS.tolist(), LABELS.tolist(), NAMES)
    evaluator = ValidationEvaluator(data, train_classes=["coat", "bag"], k=(1,))
    distractor = np.array([[0.65, 0.75]])  # a training item of "coat", right among "T-shirt/top"
    metrics = evaluator.from_outputs({"items": VECTORS.astype(np.float32)}, (distractor, np.array([0])))
    seen = brute_force(VECTORS[:5], LABELS[:5], VECTORS, LABELS, exclude_self=True)
    new_rows = np.array([5, 6, 7, 8])
    index = np.concatenate([VECTORS[new_rows], VECTORS[:5], distractor])  # the part's rows first, as it queries
    new = brute_force(VECTORS[new_rows], LABELS[new_rows], index, np.r_[LABELS[new_rows], LABELS[:5], 0], True)
    for prefix, want in (("seen", seen), ("new", new)):
        for label, (recall, map_r) in want.items():
            assert metrics[f"{prefix}/class/{NAMES[label]}/recall@1"] == pytest.approx(recall, abs=1e-6)
            assert metrics[f"{prefix}/class/{NAMES[label]}/map@r"] == pytest.approx(map_r, abs=1e-6)
    assert not any(k.startswith("class/") for k in metrics)  # with parts, every class sits in its part
    assert (evaluator.selection_key, evaluator.guard_key) == ("seen/map@r", "new/map@r")


def test_per_class_can_be_turned_off():
    data = LabeledData(VECTORS.tolist(), LABELS.tolist(), NAMES)
    metrics = ValidationEvaluator(data, train_classes=["coat", "bag"], k=(1,), per_class=False)(
        lambda items: np.asarray(items, dtype=np.float32)
    )
    assert not any("class/" in key for key in metrics)


def test_classification_per_class_accuracy_matches_a_loop():
    logits = np.array([[2, 0, 1], [0.1, 0.9, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 3, 1]])
    labels = np.array([0, 1, 2, 1, 1, 0])
    got = classification_metrics(logits, labels, per_class=True)
    pred = logits.argmax(1)
    for c in range(3):
        assert got[f"class/{c}/accuracy"] == pytest.approx(np.mean([pred[i] == c for i in range(6) if labels[i] == c]))


def test_classification_evaluator_names_model_classes():
    data = LabeledData(["x"] * 4, [0, 1, 1, 2], ["cat", "dog", "owl"])  # the model knows dog and cat, not owl
    logits = np.array([[0, 1], [0, 1], [1, 0], [1, 0]], dtype=np.float32)  # columns: dog, cat
    metrics = Evaluator(data, task="classification", classes=["dog", "cat"], per_class=True).from_outputs(
        {"items": logits}
    )
    assert metrics["class/cat/accuracy"] == 1.0 and metrics["class/dog/accuracy"] == 0.5
    assert "class/owl/accuracy" not in metrics and metrics["unknown_class_items"] == 1.0
    # 2 of the 4 predictions are right (the owl cannot be): accuracy counts the owl as an error
    assert metrics["accuracy"] == pytest.approx(2 / 4) and metrics["known/accuracy"] == pytest.approx(2 / 3)

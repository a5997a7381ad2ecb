"""RetrievalEvaluator: encodes items with the given function and prefixes retrieval_metrics' keys."""

import numpy as np
import pytest

from finetuner.evaluation import Evaluator, RetrievalEvaluator, retrieval_metrics


def encode(items):
    return np.asarray(items, dtype=np.float32)


def test_leave_one_out_keys_and_values():
    items = [[1, 0], [0.9, 0.2], [0, 1], [0.3, 1], [1, 1]]
    evaluator = RetrievalEvaluator(items, [0, 0, 1, 1, 0], name="val", k=(1, 2))
    got = evaluator(encode)
    want = retrieval_metrics(encode(items), [0, 0, 1, 1, 0], k=(1, 2))
    assert got == {f"val/{key}": value for key, value in want.items()}
    assert isinstance(evaluator, Evaluator) and evaluator.greater_is_better
    assert evaluator.primary_metric == "map@r" and evaluator.primary_key in got


def test_query_index_split_encodes_both():
    seen = []

    def spy(items):
        seen.append(len(items))
        return encode(items)

    evaluator = RetrievalEvaluator([[1, 0]], [0], [[1, 0.1], [0, 1]], [0, 1], k=1)
    assert evaluator(spy)["eval/recall@1"] == 1.0
    assert seen == [1, 2]


def test_index_items_need_labels():
    with pytest.raises(ValueError, match="together"):
        RetrievalEvaluator([[1, 0]], [0], index_items=[[1, 0]])

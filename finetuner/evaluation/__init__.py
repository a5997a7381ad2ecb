"""Evaluation: pure, chunked retrieval metrics, classification metrics, and the one `Evaluator`.

Example:
    >>> import numpy as np
    >>> from finetuner.evaluation import retrieval_metrics
    >>> emb = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    >>> metrics = retrieval_metrics(emb, np.arange(100) % 10, k=(1, 10))
"""

from finetuner.evaluation.changes import Change, class_change_summary, class_changes, describe_class_changes
from finetuner.evaluation.evaluator import Evaluator, evaluate_data
from finetuner.evaluation.metrics import classification_metrics, pair_metrics, retrieval_metrics
from finetuner.evaluation.validation import ValidationEvaluator
from finetuner.evaluation.verdict import verdict

__all__ = [
    "Change",
    "Evaluator",
    "ValidationEvaluator",
    "class_change_summary",
    "class_changes",
    "classification_metrics",
    "describe_class_changes",
    "evaluate_data",
    "pair_metrics",
    "retrieval_metrics",
    "verdict",
]

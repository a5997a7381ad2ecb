"""classification_metrics on hand-computed examples."""

import numpy as np
import pytest
import torch

from finetuner.evaluation import classification_metrics


def test_hand_computed():
    # labels 0 0 1 2, predictions 0 1 1 1: accuracy 2/4.
    # class 0: TP 1, FP 0, FN 1 -> F1 2/3; class 1: TP 1, FP 2, FN 0 -> 2/4; class 2: TP 0, FN 1 -> 0.
    got = classification_metrics(np.array([0, 1, 1, 1]), [0, 0, 1, 2])
    assert got == pytest.approx({"accuracy": 0.5, "macro_f1": (2 / 3 + 1 / 2 + 0) / 3})


def test_logits_take_the_argmax():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert classification_metrics(logits, torch.tensor([0, 1, 1]))["accuracy"] == pytest.approx(2 / 3)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="one label per embedding"):
        classification_metrics(np.array([0, 1]), [0])
    with pytest.raises(ValueError, match="logits"):
        classification_metrics(np.array([0.5, 0.2]), [0, 1])

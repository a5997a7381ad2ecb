"""`encode` of a model whose backbone is frozen: backbone and pooling in onnxruntime, checked against PyTorch."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import finetuner.inference.engine as engine_module
from finetuner.api import build_model, load

from .test_engine import FALLBACK, images


def graphs() -> set[Path]:
    return set((Path(os.environ["FINETUNER_CACHE"]) / "features" / "onnx").glob("*.onnx"))


def counted_exports(monkeypatch) -> list:
    calls = []
    real = engine_module.trace_to_onnx

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "trace_to_onnx", counting)
    return calls


class BranchingCNN(nn.Module):
    """A classifier whose features branch on the batch's values (data-dependent control flow)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = self.conv(x)
        y = y if x.mean() > 0 else -3 * y
        return self.fc(self.avgpool(y).flatten(1))


@pytest.mark.parametrize("name", ["test_cnn", "test_vit"])
def test_a_frozen_backbone_encodes_in_onnxruntime_like_pytorch(name, monkeypatch):
    torch.manual_seed(len(name))  # weights of their own: a graph no other test traced
    model = build_model(name, freeze=True, output_dim=8, pretrained=False).eval()
    exports = counted_exports(monkeypatch)
    items = images(10)
    got = model.encode(items, batch_size=4, num_workers=0)
    expected = model.encode(items, batch_size=4, num_workers=0, engine="torch")
    assert len(exports) == 1 and graphs()  # traced once, kept in the finetuner cache
    np.testing.assert_allclose(got, expected, atol=1e-4)
    again = model.encode(images(3, seed=5), batch_size=4, num_workers=0)  # the graph is read back, not traced again
    assert len(exports) == 1
    np.testing.assert_allclose(again, model.encode(images(3, seed=5), num_workers=0, engine="torch"), atol=1e-4)


def test_a_saved_frozen_model_keeps_the_engine_and_a_trained_backbone_does_not(tmp_path, monkeypatch):
    torch.manual_seed(7)  # weights of their own: a graph no other test traced
    frozen = build_model("test_cnn", freeze=True, output_dim=8, pretrained=False).eval()
    frozen.save(tmp_path / "frozen")
    loaded = load(tmp_path / "frozen")
    assert any(p.requires_grad for p in loaded.backbone.parameters())  # flags are not saved: the card says it
    exports = counted_exports(monkeypatch)
    np.testing.assert_allclose(loaded.encode(images(4), num_workers=0), frozen.encode(images(4), num_workers=0),
                               atol=1e-4)  # fmt: skip
    assert len(exports) == 1
    trained = build_model("test_cnn", output_dim=8, pretrained=False).eval()  # every layer trains: PyTorch only
    before = graphs()
    trained.encode(images(4), num_workers=0)
    assert len(exports) == 1 and graphs() == before


def test_a_backbone_that_cannot_be_traced_encodes_in_pytorch_with_one_log_line(caplog):
    model = build_model(BranchingCNN(), input_size=(3, 32, 32), freeze=True, output_dim=3).eval()
    items = images(4, low=200) + images(4, seed=1, high=40)
    with caplog.at_level(logging.INFO, logger="finetuner"):
        got = model.encode(items, batch_size=4, num_workers=0)
        model.encode(items, batch_size=4, num_workers=0)  # the refusal is remembered: no second try, no second line
    assert len([r for r in caplog.records if FALLBACK in r.getMessage()]) == 1
    np.testing.assert_allclose(got, model.encode(items, batch_size=4, num_workers=0, engine="torch"), atol=1e-6)


def test_classifiers_encode_their_features():
    torch.manual_seed(0)
    model = build_model("test_cnn", freeze=True, task="classification", classes=["a", "b"], pretrained=False).eval()
    got = model.encode(images(4), num_workers=0)
    np.testing.assert_allclose(got, model.encode(images(4), num_workers=0, engine="torch"), atol=1e-4)
    assert got.shape[1] == model.feature_dim()

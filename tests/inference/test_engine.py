"""The engine of frozen features: onnxruntime where it reproduces PyTorch, PyTorch (with one log line) where not."""

import logging

import numpy as np
import pytest
import torch
from torch import nn

import finetuner.inference.engine as engine_module
from finetuner.api import build_model
from finetuner.config import FitConfig
from finetuner.data import ImagePreprocessing
from finetuner.inference import OnnxFunction, planned_engine
from finetuner.training.cache import FeatureCache, fingerprint_features, fingerprint_module

CPU = torch.device("cpu")
PREP = ImagePreprocessing(input_size=(3, 32, 32), crop_pct=1.0, augment=None)
FALLBACK = "frozen features run in PyTorch, not onnxruntime"


def images(n, seed=0, low=0, high=255):
    rng = np.random.default_rng(seed)
    return [rng.integers(low, high, (32, 32, 3), dtype=np.uint8) for _ in range(n)]


def torch_features(fn, items):
    with torch.inference_mode():
        return fn(torch.stack([PREP.load(item, train=False) for item in items])).float()


def cached(folder, fn, fingerprint, items, engine="auto", batch_size=4, name="data"):
    cache = FeatureCache(folder, engine=engine)
    views = cache.features(fn, fingerprint, items, PREP, device=CPU, batch_size=batch_size, num_workers=0, name=name)
    return cache, views[0]


class SmallNet(nn.Module):
    """A user's own module: conv, BatchNorm, a residual add, pooling."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.out = nn.Linear(6, 5)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return self.out((y + y.mean(dim=1, keepdim=True)).mean(dim=(2, 3)))


class BranchingNet(nn.Module):
    """Data-dependent control flow: which branch runs depends on the batch's values."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 32 * 32, 4)

    def forward(self, x):
        y = self.linear(x.flatten(1))
        if x.mean() > 0:
            return y
        return -3 * y


def frozen(name):
    model = build_model(name, freeze=True, output_dim=8, pretrained=False).eval()
    return model.features, fingerprint_features(model.backbone, model.pool)


@pytest.mark.parametrize("name", ["test_cnn", "timm:test_vit", "custom"])
def test_onnxruntime_reproduces_pytorch(tmp_path, name):
    if name == "custom":
        net = SmallNet().eval()
        fn, fingerprint = net, fingerprint_module(net)
    else:
        fn, fingerprint = frozen(name.removeprefix("timm:"))
    items = images(10)  # batches of 4, 4 and 2: the batch axis is dynamic
    cache, features = cached(tmp_path, fn, fingerprint, items, engine="onnxruntime")
    assert cache.engines == {"data": "onnxruntime"}
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    expected = torch_features(fn, items)
    assert (features - expected).abs().max() <= 1e-4 * max(1.0, float(expected.abs().max()))


def test_data_dependent_control_flow_falls_back_with_one_log_line(tmp_path, caplog):
    net = BranchingNet().eval()
    bright, dark = images(4, low=200), images(4, seed=1, high=40)  # mean > 0, then < 0 after normalisation
    cache, options = FeatureCache(tmp_path), {"device": CPU, "batch_size": 4, "num_workers": 0}
    with caplog.at_level(logging.INFO, logger="finetuner"):
        features = cache.features(net, fingerprint_module(net), bright + dark, PREP, **options)[0]
        cache.features(net, fingerprint_module(net), dark + bright, PREP, name="other", **options)  # one graph: one try
    fallbacks = [r for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(fallbacks) == 1 and "data-dependent" in fallbacks[0].getMessage()
    assert cache.engines == {"data": "torch", "other": "torch"}
    expected = torch.cat([torch_features(net, bright), torch_features(net, dark)])
    torch.testing.assert_close(features, expected)
    assert not list((tmp_path / "onnx").glob("*.onnx"))  # a graph that was refused is not kept


def test_a_failed_parity_check_falls_back(tmp_path, caplog, monkeypatch):
    net = SmallNet().eval()
    monkeypatch.setattr(engine_module, "RELATIVE_TOLERANCE", -1.0)  # no difference is small enough
    with caplog.at_level(logging.INFO, logger="finetuner"):
        cache, features = cached(tmp_path, net, fingerprint_module(net), images(6))
    assert [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()][0].count("differs from PyTorch") == 1
    assert cache.engines == {"data": "torch"}
    torch.testing.assert_close(features, torch_features(net, images(6)))


def test_the_graph_is_exported_once_and_read_back(tmp_path, monkeypatch):
    net = SmallNet().eval()
    cached(tmp_path, net, fingerprint_module(net), images(6))

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(engine_module, "trace_to_onnx", no_export)
    cache, features = cached(tmp_path, net, fingerprint_module(net), images(5, seed=3))  # other items, same graph
    assert cache.engines == {"data": "onnxruntime"}
    torch.testing.assert_close(features, torch_features(net, images(5, seed=3)), rtol=1e-4, atol=1e-4)


def test_a_graph_checked_in_this_process_is_not_checked_again(tmp_path):
    """The test pass after the training pass reuses the check: PyTorch does not run at all the second time."""
    net = SmallNet().eval()
    calls = []
    net.register_forward_hook(lambda *args: calls.append(1))
    cached(tmp_path, net, fingerprint_module(net), images(6))
    first = len(calls)  # the first batch's reference, and the export's trace
    cache, features = cached(tmp_path, net, fingerprint_module(net), images(5, seed=3), name="test")
    assert first > 0 and len(calls) == first and cache.engines == {"test": "onnxruntime"}
    torch.testing.assert_close(features, torch_features(net, images(5, seed=3)), rtol=1e-4, atol=1e-4)


def test_engine_torch_never_touches_onnx(tmp_path, monkeypatch):
    net = SmallNet().eval()

    def no_export(*args, **kwargs):
        raise AssertionError("engine='torch' exported a graph")

    monkeypatch.setattr(engine_module, "trace_to_onnx", no_export)
    cache, features = cached(tmp_path, net, fingerprint_module(net), images(6), engine="torch")
    assert cache.engines == {"data": "torch"} and not (tmp_path / "onnx").exists()
    torch.testing.assert_close(features, torch_features(net, images(6)))


def test_the_engine_is_part_of_the_cache_key_and_of_the_record(tmp_path):
    net, items = SmallNet().eval(), images(6)
    cache = FeatureCache(tmp_path)
    keys = {engine: cache.key(fingerprint_module(net), items, PREP, 1, engine=engine) for engine in ("torch", "ort")}
    assert keys["torch"] != keys["ort"]
    cached(tmp_path, net, fingerprint_module(net), items, engine="torch")
    cached(tmp_path, net, fingerprint_module(net), items, engine="auto")
    engines = sorted(path.read_text() for path in tmp_path.glob("*/meta.json"))
    assert len(engines) == 2 and '"engine": "onnxruntime"' in engines[0] and '"engine": "torch"' in engines[1]
    reused, _ = cached(tmp_path, net, fingerprint_module(net), items, engine="auto")
    assert reused.engines == {"data": "onnxruntime"}  # read back from the entry's record


def test_auto_plans_pytorch_where_onnxruntime_has_no_provider():
    assert planned_engine("auto", CPU) == "onnxruntime"
    assert planned_engine("torch", CPU) == "torch"
    assert planned_engine("auto", torch.device("meta")) == "torch"


def test_a_batch_of_one_still_gives_a_dynamic_batch_axis(tmp_path):
    net = SmallNet().eval()
    run = OnnxFunction(net, fingerprint_module(net), tmp_path, device=CPU)
    batches = [torch.stack([PREP.load(item, train=False) for item in images(n, seed=n)]) for n in (1, 3)]
    with torch.inference_mode():
        outputs = [run(batch) for batch in batches]
        assert run.engine == "onnxruntime"
        for batch, output in zip(batches, outputs):
            torch.testing.assert_close(output, net(batch), rtol=1e-4, atol=1e-4)


def test_unknown_engines_are_refused_by_name():
    with pytest.raises(ValueError, match=r"engine must be one of \['auto', 'torch', 'onnxruntime'\], got 'tensorrt'"):
        FeatureCache("unused", engine="tensorrt")
    with pytest.raises(ValueError, match="cache_engine must be 'auto' or 'torch' or 'onnxruntime', got 'onnx'"):
        FitConfig.from_options(cache_engine="onnx")
    assert FitConfig.from_options(cache_engine="torch").cache.cache_engine == "torch"

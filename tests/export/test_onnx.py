"""ONNX export: onnxruntime reproduces PyTorch for each module kind, at several batch sizes and sequence lengths."""

import numpy as np
import onnx
import pytest
import timm
import torch
import torchvision
import transformers
from torch import nn

from finetuner.export import OnnxEncoder
from finetuner.export.onnx import OnnxCheckError, _gather_external_data, export_onnx


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread: with two threads on shared cores, thread hand-offs dominate (25x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _resnet_with_head() -> nn.Module:
    resnet = torchvision.models.resnet18(weights=None)
    body = nn.Sequential(*list(resnet.children())[:-1])  # everything up to and including avgpool
    return nn.Sequential(body, nn.Flatten(), nn.Linear(512, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16))


class _Exit(Exception):
    pass


class _EarlyExit(nn.Module):
    """Stops the forward at ``layer``: its hook stores the output and raises, and forward catches that."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        self.model = model
        self._out = None
        model.get_submodule(layer).register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        self._out = out
        raise _Exit

    def forward(self, x):
        try:
            self.model(x)
        except _Exit:
            pass
        out, self._out = self._out, None
        return out.flatten(1)


def _tiny_bert() -> transformers.BertModel:
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100
    )
    return transformers.BertModel(config)


def _mean_pool(hidden, mask):
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class _BertKeywords(nn.Module):
    """forward(input_ids, attention_mask): called with keywords."""

    def __init__(self) -> None:
        super().__init__()
        self.bert = _tiny_bert()

    def forward(self, input_ids, attention_mask):
        return _mean_pool(
            self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask
        )


class _BertDict(_BertKeywords):
    """forward(inputs: dict), as TailoredModel is called; ignores token_type_ids."""

    def forward(self, inputs):
        return super().forward(inputs["input_ids"], inputs["attention_mask"])


def _tokens(batch: int, length: int, with_type_ids: bool = False) -> dict:
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, length // 2 :] = 0  # one padded row
    tokens = {"input_ids": torch.randint(0, 100, (batch, length)), "attention_mask": mask}
    if with_type_ids:
        tokens["token_type_ids"] = torch.zeros(batch, length, dtype=torch.long)
    return tokens


IMAGE_MODELS = {
    "resnet18_head": _resnet_with_head,
    "efficientnet_lite0": lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False),
    "early_exit": lambda: _EarlyExit(torchvision.models.resnet18(weights=None), "avgpool"),
    # nn.MultiheadAttention: its fused eval-mode kernel has no ONNX export, so the exporter must avoid it
    "torchvision_vit": lambda: torchvision.models.VisionTransformer(
        image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=8
    ),
}


def _torch_out(model, inputs):
    with torch.no_grad():
        return model(inputs).numpy()


@pytest.mark.parametrize("name", list(IMAGE_MODELS))
def test_image_models_match_torch_at_two_batch_sizes(name, tmp_path):
    model = IMAGE_MODELS[name]().eval()
    path = export_onnx(model, torch.randn(2, 3, 16, 16), tmp_path / "model.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temp file left behind
    encoder = OnnxEncoder(path)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 16, 16)
        np.testing.assert_allclose(encoder(x), _torch_out(model, x), atol=1e-4)
    if name == "early_exit":  # the graph stops at the hooked layer: resnet's classifier is not in it
        assert not {"Gemm", "MatMul"} & {node.op_type for node in onnx.load(str(path)).graph.node}
    assert torch.backends.mha.get_fastpath_enabled()  # switched off for the export only


@pytest.mark.parametrize("module_cls", [_BertKeywords, _BertDict])
def test_text_model_matches_torch_at_two_batch_sizes_and_lengths(module_cls, tmp_path):
    model = module_cls().eval()
    path = export_onnx(model, _tokens(2, 7, with_type_ids=True), tmp_path / "text.onnx")
    encoder = OnnxEncoder(path)
    for batch, length in [(2, 7), (5, 12)]:
        tokens = _tokens(batch, length, with_type_ids=True)
        expected = _torch_out(model, tokens) if module_cls is _BertDict else model(**_without_types(tokens)).detach()
        np.testing.assert_allclose(encoder(tokens), np.asarray(expected), atol=1e-4)
    assert not any(m.training for m in model.modules())  # still in eval mode, as it was before the export


def _without_types(tokens: dict) -> dict:
    return {k: v for k, v in tokens.items() if k != "token_type_ids"}


def test_export_restores_train_mode_and_leaves_weights_alone(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, torch.randn(2, 4), tmp_path / "m.onnx")
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class _CallCounter(nn.Module):
    """Scales by how often it was called: tracing bakes the count at export time into the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


class _FixedBatch(nn.Module):
    """A batch size turned into a Python int is a constant in the traced graph."""

    def forward(self, x):
        return x.reshape(int(x.shape[0]), -1)


@pytest.mark.parametrize("module", [_CallCounter(), _FixedBatch()], ids=["values", "batch"])
def test_mismatch_raises_and_writes_nothing(module, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous export")
    with pytest.raises(OnnxCheckError, match="Nothing was written"):
        export_onnx(module, torch.randn(2, 4), path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_mismatch_from_runtime_raises(tmp_path, monkeypatch):
    import onnxruntime

    real_run = onnxruntime.InferenceSession.run
    monkeypatch.setattr(onnxruntime.InferenceSession, "run", lambda self, *a, **k: [real_run(self, *a, **k)[0] + 1e-3])
    with pytest.raises(OnnxCheckError, match=r"differs from PyTorch by 0.001 \(atol=0.0001\)"):
        export_onnx(nn.Linear(4, 3), torch.randn(2, 4), tmp_path / "m.onnx")
    export_onnx(nn.Linear(4, 3), torch.randn(2, 4), tmp_path / "m.onnx", atol=1e-2)
    export_onnx(nn.Linear(4, 3), torch.randn(2, 4), tmp_path / "unchecked.onnx", check=False)


def test_module_must_return_a_tensor(tmp_path):
    with pytest.raises(ValueError, match="returns one \\(B, D\\) tensor"):
        export_onnx(_tiny_bert(), _tokens(2, 5), tmp_path / "m.onnx")


def test_fixed_batch_and_opset(tmp_path):
    path = export_onnx(nn.Linear(4, 3), torch.randn(2, 4), tmp_path / "m.onnx", dynamic_batch=False, opset=17)
    assert OnnxEncoder(path).session.get_inputs()[0].shape == [2, 4]
    assert onnx.load(str(path)).opset_import[0].version == 17


def test_module_in_another_dtype_is_copied_not_changed(tmp_path):
    model = nn.Linear(4, 3).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    path = export_onnx(model, x, tmp_path / "m.onnx")
    assert model.weight.dtype == torch.float64
    np.testing.assert_allclose(OnnxEncoder(path)(x), model(x).detach().numpy(), atol=1e-5)  # fed as float32


def test_weights_split_per_tensor_are_gathered_into_one_data_file(tmp_path):
    """What the exporter writes for models over 2 GB: one external file per weight."""
    model = nn.Sequential(nn.Linear(4, 300), nn.ReLU(), nn.Linear(300, 3)).eval()  # weights over 1 kB go external
    x = torch.randn(2, 4)
    export_onnx(model, x, tmp_path / "small.onnx")
    folder = tmp_path / "split"
    folder.mkdir()
    proto = onnx.load(str(tmp_path / "small.onnx"))
    onnx.save_model(
        proto, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0
    )
    assert len(list(folder.iterdir())) > 2

    _gather_external_data(folder, "m.onnx")

    assert sorted(p.name for p in folder.iterdir()) == ["m.onnx", "m.onnx.data"]
    assert (folder / "m.onnx.data").stat().st_mode == (folder / "m.onnx").stat().st_mode
    np.testing.assert_allclose(OnnxEncoder(folder / "m.onnx")(x), _torch_out(model, x), atol=1e-5)


def test_encoder_inputs(tmp_path):
    path = export_onnx(_BertDict().eval(), _tokens(2, 5), tmp_path / "text.onnx")
    encoder = OnnxEncoder(path, providers=["CPUExecutionProvider"])
    assert encoder.providers == ["CPUExecutionProvider"]
    tokens = {k: v.numpy().astype(np.int32) for k, v in _tokens(3, 4).items()}  # cast to the graph's int64
    assert encoder(tokens).shape == (3, 32)
    with pytest.raises(ValueError, match="Missing inputs"):
        encoder({"input_ids": tokens["input_ids"]})
    with pytest.raises(ValueError, match="pass a dict"):
        encoder(tokens["input_ids"])
    with pytest.raises(FileNotFoundError):
        OnnxEncoder(tmp_path / "missing.onnx")

import copy
import io
import warnings

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from finetuner.tailor import EarlyExit, Removed, chop, freeze, is_frozen

from .helpers import assert_equal, hooked_output, make_input, run

CASES = [
    ("tv_resnet18", "layer1"),
    ("tv_resnet18", "layer3.0.bn1"),  # inside a residual block
    ("tv_resnet18", "layer2.0.downsample"),  # runs on the block input, after bn2
    ("tv_resnet18", "layer1.0.relu"),  # called twice: the last call's output
    ("tv_resnet18", "avgpool"),
    ("tv_resnet18", "fc"),  # after a functional torch.flatten
    ("tv_efficientnet_b0", "features.3"),
    ("tv_efficientnet_b0", "features.2.0.block.1"),
    ("tv_mobilenet_v3_small", "classifier.1"),
    ("tv_convnext", "features.5.0.block"),
    ("tv_convnext", "classifier.1"),
    ("tv_vit", "conv_proj"),
    ("tv_vit", "encoder.layers.encoder_layer_0"),
    ("tv_vit", "encoder.ln"),
    ("timm_resnet18", "layer2.1"),
    ("timm_vit_tiny", "blocks.0"),
    ("timm_vit_tiny", "norm"),
    ("timm_convnext_atto", "stages.1"),
    ("timm_convnext_atto", "head.norm"),
    ("timm_efficientnet_lite0", "blocks.2"),
    ("timm_hybrid_vit", "patch_embed"),
    ("timm_hybrid_vit", "blocks.0.attn"),
    ("hf_bert", "embeddings"),
    ("hf_bert", "encoder.layer.0"),  # returns a tuple or tensor depending on the version
    ("hf_bert", "encoder"),  # a ModelOutput
    ("hf_bert", "pooler"),
    ("hf_vit", "layers.1"),
    ("hf_vit", "layernorm"),
    ("mlp", "1"),
    ("rnn", "encoder.lstm"),  # (output, (h, c))
    ("rnn", "encoder"),
]


@pytest.mark.parametrize(("model_name", "layer"), CASES)
def test_chop_output_equals_hooked_activation(zoo, model_name, layer):
    model, kwargs = zoo(model_name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chopped = chop(model, layer, **kwargs)
    x = make_input(kwargs)
    assert_equal(run(chopped.eval(), x), hooked_output(model, layer, x))
    # the input model is untouched: same weights, no hooks left, no placeholder
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())
    assert not any(isinstance(m, Removed) for m in model.modules())


def test_structural_chop_is_a_sequential_with_original_names(zoo):
    model, kwargs = zoo("tv_resnet18")
    chopped = chop(model, "layer2", **kwargs)
    assert isinstance(chopped, nn.Sequential)
    assert list(dict(chopped.named_children())) == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2"]
    original = model.state_dict()
    assert all(torch.equal(original[k], v) for k, v in chopped.state_dict().items())
    inner = chop(model, "layer3.0.bn1", **kwargs)
    names = [n for n, _ in inner.named_parameters()]
    assert names[-3:] == ["layer3.0.conv1.weight", "layer3.0.bn1.weight", "layer3.0.bn1.bias"]


def test_early_exit_drops_layers_that_run_after(zoo):
    model, kwargs = zoo("tv_vit")
    chopped = chop(model, "encoder.layers.encoder_layer_0", **kwargs)
    assert isinstance(chopped, EarlyExit)
    removed = {m.removed_name for m in chopped.modules() if isinstance(m, Removed)}
    assert removed == {"encoder.layers.encoder_layer_1", "encoder.ln", "heads"}
    assert not any(k.startswith(("model.heads", "model.encoder.ln")) for k in chopped.state_dict())
    assert sum(p.numel() for p in chopped.parameters()) < sum(p.numel() for p in model.parameters())


def _flops(model, x):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def test_chop_early_computes_a_fraction_of_the_full_model(zoo):
    model, kwargs = zoo("tv_resnet50")
    x = make_input(kwargs)
    full = _flops(model, x)
    assert _flops(chop(model, "layer1", **kwargs).eval(), x) < 0.25 * full
    assert _flops(chop(model, "layer1.0.conv2", **kwargs).eval(), x) < 0.1 * full  # inside a block


def test_early_exit_runs_no_module_after_the_layer(zoo):
    model, kwargs = zoo("timm_vit_tiny")
    chopped = chop(model, "blocks.0", **kwargs).eval()
    ran = []  # pre-hooks: the layer chopped at never returns normally (its exit hook raises)
    handles = [m.register_forward_pre_hook(lambda m, a, n=n: ran.append(n)) for n, m in chopped.named_modules()]
    run(chopped, make_input(kwargs))
    for h in handles:
        h.remove()
    assert "model.blocks.0" in ran
    after = ("model.blocks.1", "model.blocks.2", "model.norm", "model.fc_norm", "model.head")
    assert not [n for n in ran if any(n == a or n.startswith(a + ".") for a in after)]


def test_unknown_layer_lists_close_names(zoo):
    model, kwargs = zoo("tv_resnet18")
    with pytest.raises(ValueError, match=r"'layer3\.0\.bn3'.*'layer3\.0\.bn1'.*finetuner\.tailor\.display"):
        chop(model, "layer3.0.bn3", **kwargs)


def test_layer_that_does_not_run_is_rejected():
    from .helpers import Twice

    with pytest.raises(ValueError, match="did not run"):
        chop(Twice(), "unused", input_size=(4,))


def test_text_model_needs_example_input(zoo):
    model, _ = zoo("hf_bert")
    with pytest.raises(ValueError, match="example_input"):
        chop(model, "encoder")


def test_default_input_size_for_image_models(zoo):
    model, kwargs = zoo("timm_vit_tiny")  # img_size=32 is read from patch_embed
    x = make_input(kwargs)
    assert_equal(run(chop(model, "blocks.0").eval(), x), hooked_output(model, "blocks.0", x))


def test_chopped_models_deepcopy_pickle_and_keep_freezing(zoo):
    model, kwargs = zoo("tv_vit")
    frozen = freeze(copy.deepcopy(model), ["conv_proj"])
    chopped = chop(frozen, "encoder.layers.encoder_layer_0", **kwargs).eval()
    assert is_frozen(chopped.model.conv_proj) and not is_frozen(chopped.model.encoder)
    x = make_input(kwargs)
    expected = run(chopped, x)
    assert_equal(run(copy.deepcopy(chopped), x), expected)
    buffer = io.BytesIO()
    torch.save(chopped, buffer)
    buffer.seek(0)
    assert_equal(run(torch.load(buffer, weights_only=False), x), expected)


def test_nested_early_exits_do_not_catch_each_other(zoo):
    model, kwargs = zoo("tv_vit")
    outer = chop(model, "encoder.layers.encoder_layer_1", **kwargs)
    inner = chop(outer, "model.encoder.layers.encoder_layer_0", **kwargs)
    x = make_input(kwargs)
    assert_equal(run(inner.eval(), x), hooked_output(model, "encoder.layers.encoder_layer_0", x))


def test_structural_chop_traces_and_exports_to_onnx(zoo, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model, kwargs = zoo("tv_resnet18")
    chopped = chop(model, "layer2", **kwargs).eval()
    x = make_input(kwargs)
    expected = run(chopped, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(chopped, x)
        torch.onnx.export(chopped, (x,), tmp_path / "m.onnx", dynamo=False, input_names=["x"])
    assert torch.allclose(traced(x), expected, atol=1e-5)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    (onnx_out,) = session.run(None, {"x": x.numpy()})
    assert torch.allclose(torch.from_numpy(onnx_out), expected, atol=1e-4)


def test_early_exit_traces(zoo):
    model, kwargs = zoo("tv_resnet18")
    chopped = chop(model, "fc", **kwargs).eval()
    assert isinstance(chopped, EarlyExit)
    x = make_input(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(chopped, x)
    other = torch.randn_like(x)
    assert torch.allclose(traced(other), run(chopped, other), atol=1e-5)


class _PeeksAtHead(nn.Module):
    """Reads the head's bias before running the body: dropping the head would break it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x + self.head.bias.mean()))


def test_placeholders_are_put_back_when_the_model_needs_them():
    model = _PeeksAtHead()
    chopped = chop(model, "body", input_size=(4,))
    assert isinstance(chopped, EarlyExit) and isinstance(chopped.model.head, nn.Linear)
    x = torch.randn(3, 4)
    assert_equal(run(chopped, x), hooked_output(model, "body", x))


def test_shared_and_unused_modules_are_kept():
    from .helpers import Twice

    model = Twice()  # act runs before and after lin, unused never runs
    chopped = chop(model, "lin", input_size=(4,))
    assert isinstance(chopped, EarlyExit)
    assert isinstance(chopped.model.out, Removed) and isinstance(chopped.model.unused, nn.Linear)
    x = torch.randn(3, 4)
    assert_equal(run(chopped, x), model.lin(model.act(x)))

import io

import pytest
import torch
from torch import nn

from finetuner.tailor import LayerInfo, default_embedding_layer, dense_layers, display, freeze, summary

from .helpers import RNNClassifier, Twice, build


def test_summary_order_calls_and_shapes():
    infos = summary(Twice(), (4,))
    assert infos == [
        LayerInfo("act", "ReLU", (6,), 0, 0, True, calls=2),  # listed once, at its first call; last call's shape
        LayerInfo("lin", "Linear", (6,), 30, 30, True),
        LayerInfo("out", "Linear", (2,), 14, 14, True),
    ]  # the root and the never-called "unused" are not listed


def test_summary_names_are_module_paths_in_execution_order():
    model = build("tv_resnet18")
    infos = summary(model, (3, 32, 32))
    names = [i.name for i in infos]
    assert names[:6] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer1.0"]
    assert names[-2:] == ["avgpool", "fc"]
    modules = dict(model.named_modules())
    assert all(name in modules for name in names)
    by_name = {i.name: i for i in infos}
    assert by_name["layer3.0.bn1"].output_shape == (256, 2, 2)
    assert by_name["layer1.0.relu"].calls == 2
    assert by_name["layer1"].params == sum(p.numel() for p in model.layer1.parameters())  # recursive
    assert by_name["avgpool"].is_dense and by_name["fc"].is_dense and not by_name["layer3"].is_dense


def test_summary_tuple_and_dict_outputs_have_no_shape():
    infos = {i.name: i for i in summary(RNNClassifier(), (5, 8))}
    assert infos["encoder.lstm"].output_shape is None and not infos["encoder.lstm"].is_dense
    assert infos["encoder"].output_shape is None
    assert infos["fc"].output_shape == (3,)


def test_summary_restores_training_flags_and_leaves_no_hooks():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    model[2].eval()
    stats = model[1].running_mean.clone()
    summary(model, (4,))
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    assert torch.equal(model[1].running_mean, stats) and model[1].num_batches_tracked == 0  # ran in eval mode
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_summary_does_not_touch_the_global_random_state():
    model = Twice()
    state = torch.random.get_rng_state()
    summary(model, (4,))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_summary_trainable_counts_follow_freeze():
    model = freeze(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), ["0"])
    first, second = summary(model, (4,))
    assert (first.trainable, first.frozen) == (0, True)
    assert (second.trainable, second.frozen) == (10, False)


def test_dense_layers():
    assert dense_layers(Twice(), (4,)) == ["act", "lin", "out"]
    assert dense_layers(build("tv_resnet18"), (3, 64, 64)) == ["avgpool", "fc"]  # layer4 is (512, 2, 2)


EMBEDDING_LAYERS = {
    "tv_resnet18": "avgpool",
    "tv_efficientnet_b0": "avgpool",
    "tv_mobilenet_v3_small": "classifier.1",  # the hidden layer of its 2-layer classifier
    "tv_convnext": "classifier.0",  # LayerNorm2d; the classifier flattens it into its Linear
    "tv_vit": "encoder",  # returns encoder.ln's output; class token
    "timm_resnet18": "global_pool",
    "timm_vit_tiny": "norm",
    "timm_convnext_atto": "head.norm",
    "timm_efficientnet_lite0": "global_pool",
    "timm_hybrid_vit": "norm",
    "hf_bert": "pooler",
    "hf_bert_no_pooler": "encoder",
    "hf_vit": "pooler",
    "mlp": "1",
    "rnn": "encoder",  # its output[:, -1] feeds fc
}


@pytest.mark.parametrize("model_name", sorted(EMBEDDING_LAYERS))
def test_default_embedding_layer(zoo, model_name):
    model, kwargs = zoo(model_name)
    assert default_embedding_layer(model, **kwargs) == EMBEDDING_LAYERS[model_name]


def test_display_table(zoo):
    model, kwargs = zoo("tv_resnet18")
    out = io.StringIO()
    table = display(model, **kwargs, file=out)
    assert out.getvalue() == table + "\n"
    lines = table.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params", "Trainable", "Dense"]
    fc = next(line for line in lines if line.startswith("fc "))
    assert fc.split() == ["fc", "Linear", "(1000)", "513,000", "yes", "dense"]
    assert "layer1.0.relu" in table and "ReLU x2" in table
    avgpool = next(line for line in lines if line.startswith("avgpool "))
    assert avgpool.endswith("dense  <- embedding")
    assert "Params: 11,689,512 total, 11,689,512 trainable, 0 frozen" in table
    assert len({len(line) for line in lines[:3]}) >= 1 and lines[1] == "-" * len(lines[1])


def test_display_shows_frozen_layers():
    model = freeze(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), ["0"])
    table = display(model, (4,), file=io.StringIO())
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:5]}
    assert rows["0"][4] == "frozen" and rows["1"][4] == "-" and rows["2"][4] == "yes"
    assert "Params: 30 total, 10 trainable, 20 frozen" in table


def test_display_text_model(zoo):
    model, kwargs = zoo("hf_bert")
    table = display(model, **kwargs, file=io.StringIO())
    assert "encoder.layer.0.attention" in table and "input {input_ids: (2, 7)" in table

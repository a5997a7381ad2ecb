"""'first:N' freezing on a tiny BERT through tailor: frozen blocks stay bit-identical while the rest trains."""

import io

import pytest
import torch
from torch import nn

from finetuner import tailor
from finetuner.tailor import find_blocks, resolve_freeze
from finetuner.training.pair_losses import MultipleNegativesRankingLoss
from tests.text.conftest import SENTENCES

FROZEN = ["transformer.embeddings", "transformer.encoder.layer.0", "transformer.encoder.layer.1"]


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_first_n_blocks_names(backbone):
    assert resolve_freeze(backbone.module, "first:2") == FROZEN
    assert resolve_freeze(backbone.module, "first:0") == ["transformer.embeddings"]
    with pytest.raises(ValueError, match="'first:0' to 'first:3'"):
        resolve_freeze(backbone.module, "first:4")
    with pytest.raises(ValueError, match="Unknown layer name"):
        resolve_freeze(backbone.module, "last:2")


def test_blocks_are_the_longest_list_of_identical_modules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embed = nn.Embedding(10, 4)
            self.heads = nn.ModuleList([nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 4)])  # mixed
            self.blocks = nn.Sequential(*[nn.Linear(4, 4) for _ in range(3)])
            self.pos_embed = nn.Parameter(torch.zeros(4))

    assert find_blocks(Net())[0] == "blocks"
    assert resolve_freeze(Net(), "first:1") == ["token_embed", "pos_embed", "blocks.0"]
    with pytest.raises(ValueError, match="no list of identical blocks"):
        find_blocks(nn.Linear(2, 2))


def test_display_marks_the_pooling_as_embedding_layer(backbone):
    table = tailor.display(backbone.module, example_input=backbone.example_input, file=io.StringIO())
    assert "TokenPooling" in table and "Default embedding layer: 'pool'" in table
    infos = {info.name: info for info in tailor.summary(backbone.module, example_input=backbone.example_input)}
    assert infos["pool"].output_shape == (32,) and infos["pool"].is_dense
    assert infos["transformer.encoder.layer.2"].params == _params(backbone.module.transformer.encoder.layer[2])


def test_frozen_first_blocks_stay_bit_identical_while_the_rest_trains(backbone):
    encoder = backbone.module
    freeze = resolve_freeze(encoder, "first:2")
    model = tailor.to_embedding_model(encoder, example_input=backbone.example_input, freeze=freeze, output_dim=8)
    assert model.embedding_layer == "pool"
    with torch.no_grad():  # the tailored features are the encoder's masked-mean embeddings
        batch = backbone.preprocessing.collate(SENTENCES)
        torch.testing.assert_close(model.eval().features(batch), encoder.eval()(**batch))

    body = model.backbone.model  # chop at the last layer keeps the whole encoder under EarlyExit
    frozen = sum(_params(body.get_submodule(name)) for name in FROZEN)
    assert tailor.count_parameters(model, trainable_only=True) == _params(model) - frozen
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(tailor.trainable_parameters(model), lr=1e-2)
    loss_fn = MultipleNegativesRankingLoss()
    queries = backbone.preprocessing.collate(["the cat", "a dog", "hello", "sun"])
    documents = backbone.preprocessing.collate(["the cat sat", "dogs", "hello world", "the sun"])
    model.train()
    for _ in range(3):
        loss = loss_fn(model(queries), model(documents))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, param in model.named_parameters():
        is_frozen = any(f"model.{prefix}." in name for prefix in FROZEN)
        assert torch.equal(param, before[name]) == is_frozen, name


@pytest.mark.parametrize("task", ["classification", "embedding"])
def test_text_freeze_lists_for_every_task(hf_folder, task):
    import finetuner

    names = ["transformer.embeddings", "transformer.encoder.layer.0"]
    model = finetuner.build_model(str(hf_folder), task=task, freeze=names, classes=["a", "b"], output_dim=8)
    frozen = {n for n, p in model.backbone.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(tuple(names)) for n in frozen)
    assert any(n.startswith("transformer.encoder.layer.1") for n, p in model.backbone.named_parameters()
               if p.requires_grad)
    with pytest.raises(ValueError, match="transformer.encoder.layer.0"):
        finetuner.build_model(str(hf_folder), task=task, freeze=["transformer.encoder.layer.O"], classes=["a", "b"])

"""LoRA on a tiny BERT: trainable counts, training moves only the adapters, merging reproduces the outputs."""

import copy

import pytest
import torch
from torch import nn

from finetuner import tailor
from finetuner.models.hf_text import rebuild
from finetuner.models.lora import apply_lora, default_target_modules, has_lora, merge_lora
from finetuner.training.pair_losses import MultipleNegativesRankingLoss
from tests.text.conftest import SENTENCES

# tiny BERT: hidden 32, intermediate 64, 3 layers; a LoRA on Linear(in, out) has rank * (in + out) values
QUERY_VALUE = 3 * 2 * 8 * (32 + 32)
ALL_DENSE = 3 * 8 * (3 * 64 + 64 + (32 + 64) + (64 + 32))  # q, k, v, attention out, intermediate, output


def _trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _train(model, preprocessing, steps=3):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    queries = preprocessing.collate(["the cat", "a dog", "hello", "sun"])
    documents = preprocessing.collate(["the cat sat", "dogs", "hello world", "the sun"])
    model.train()
    for _ in range(steps):
        loss = MultipleNegativesRankingLoss()(model(queries), model(documents))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_default_targets_by_architecture(backbone):
    assert default_target_modules(backbone.module) == ["query", "value"]

    class FusedAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)

    assert default_target_modules(FusedAttention()) == ["qkv"]
    with pytest.raises(ValueError, match="target_modules=.*'fc'"):
        default_target_modules(nn.ModuleDict({"fc": nn.Linear(2, 2), "act": nn.ReLU()}))


@pytest.mark.parametrize(
    ("targets", "expected"), [(None, QUERY_VALUE), (["query", "key", "value", "dense"], ALL_DENSE)]
)
def test_only_lora_parameters_train(backbone, targets, expected):
    encoder = apply_lora(backbone.module, rank=8, target_modules=targets)
    assert _trainable(encoder) == expected
    assert all("lora_" in name for name, p in encoder.named_parameters() if p.requires_grad)


def test_merged_model_equals_lora_model_with_the_original_names(backbone):
    original_keys = list(backbone.module.state_dict())
    batch = backbone.preprocessing.collate(SENTENCES)
    with torch.no_grad():
        before = backbone.module.eval()(**batch)
    encoder = apply_lora(backbone.module, rank=4, alpha=8, dropout=0.1)
    base = {name: p.detach().clone() for name, p in encoder.named_parameters() if "lora_" not in name}
    _train(encoder, backbone.preprocessing)
    assert all(torch.equal(p, base[name]) for name, p in encoder.named_parameters() if "lora_" not in name)
    with torch.no_grad():
        with_lora = encoder(**batch)
        merged = merge_lora(encoder)
        assert not has_lora(merged) and list(merged.state_dict()) == original_keys
        torch.testing.assert_close(merged(**batch), with_lora, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(with_lora, before, atol=1e-3)  # the adapters learnt something
        plain = rebuild(backbone.spec)
        plain.load_state_dict(merged.state_dict())
        torch.testing.assert_close(plain.eval()(**batch), with_lora, atol=1e-5, rtol=1e-4)


def test_lora_on_a_tailored_backbone_keeps_the_head_trainable(backbone):
    model = tailor.to_embedding_model(backbone.module, example_input=backbone.example_input, output_dim=8)
    head = _trainable(model.head)
    apply_lora(model.backbone)
    assert _trainable(model) == QUERY_VALUE + head
    _train(model, backbone.preprocessing, steps=1)
    merge_lora(model.backbone)
    assert not has_lora(model)


def test_peft_names_and_lora_config_give_the_same_adapters(backbone):
    from peft import LoraConfig

    from finetuner.models.lora import lora_config

    ours = lora_config(backbone.module, {"rank": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["query"]})
    peft_options = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": ["query"]}
    peft_names = lora_config(backbone.module, peft_options)
    given = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["query"])
    for config in (peft_names, lora_config(backbone.module, given)):
        assert (config.r, config.lora_alpha, config.lora_dropout, set(config.target_modules)) == (4, 8, 0.1, {"query"})
    assert (ours.r, ours.lora_alpha, ours.lora_dropout, set(ours.target_modules)) == (4, 8, 0.1, {"query"})
    assert set(lora_config(backbone.module, LoraConfig(r=2)).target_modules) == {"query", "value"}  # defaults filled
    for options in ({"r": 8}, LoraConfig(r=8), True):
        encoder = apply_lora(copy.deepcopy(backbone.module), options)
        assert _trainable(encoder) == QUERY_VALUE


def test_lora_through_build_model_accepts_a_lora_config(hf_folder):
    from peft import LoraConfig

    import finetuner

    model = finetuner.build_model(str(hf_folder), lora=LoraConfig(r=8, lora_alpha=16))
    assert _trainable(model.backbone) == QUERY_VALUE and has_lora(model)


def test_lora_option_errors(backbone):
    from finetuner.models.lora import lora_config

    with pytest.raises(ValueError, match=r"Unknown LoRA options \['rnak'\]"):
        lora_config(backbone.module, {"rnak": 4})
    with pytest.raises(ValueError, match="'rank' is given twice .* peft's 'r'"):
        lora_config(backbone.module, {"rank": 4, "r": 8})
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        lora_config(backbone.module, {"r": 0})
    with pytest.raises(ValueError, match="not both"):
        apply_lora(backbone.module, {"r": 4}, alpha=2)
    with pytest.raises(ValueError, match="peft.LoraConfig, got str"):
        lora_config(backbone.module, "rank=4")

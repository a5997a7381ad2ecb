"""`finetuner.fit` on text: a tiny random BERT folder, labelled sentences and (query, document) pairs."""

import numpy as np
import pytest
import torch

import finetuner

ANIMALS = [
    "the cat sat on the mat",
    "a cat is on a mat",
    "cats sat",
    "the dog sat",
    "dogs was on the mat",
    "a dog is good",
    "the cat was bad",
    "dogs sat on a mat",
]
MOVIES = [
    "a good movie",
    "a great film",
    "the film was awful",
    "a bad movie",
    "the movie is great",
    "good film",
    "an awful movie",
    "the film is good",
]
LABELLED = [(text, "animal") for text in ANIMALS] + [(text, "movie") for text in MOVIES]
PAIRS = [
    ("cat", "the cat sat on the mat"),
    ("dog", "the dog sat"),
    ("movie", "a good movie"),
    ("film", "a great film"),
    ("sun", "the sun is good"),
    ("moon", "the moon was great"),
]


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_first_blocks_frozen_stay_bit_identical_and_the_model_reloads(hf_folder, tmp_path):
    original = finetuner.build_model(str(hf_folder), output_dim=8)
    frozen_names = [n for n in original.backbone.state_dict() if "embeddings" in n or ".layer.0." in n]
    run = finetuner.fit(
        str(hf_folder),
        LABELLED,
        freeze="first:1",
        output_dim=8,
        epochs=2,
        batch_size=8,
        learning_rate=1e-2,
        cache_dir=tmp_path,
    )
    after = run.model.backbone.state_dict()
    for name in frozen_names:
        assert torch.equal(after[name], original.backbone.state_dict()[name]), name
    changed = [n for n in after if ".layer.2." in n and not torch.equal(after[n], original.backbone.state_dict()[n])]
    assert changed, "the unfrozen blocks did not train"
    loaded = finetuner.load(run.save(tmp_path / "model"))
    assert (tmp_path / "model" / "tokenizer_config.json").is_file()
    np.testing.assert_allclose(loaded.encode(ANIMALS), run.encode(ANIMALS), atol=1e-5)


def test_lora_trains_adapters_only_and_saves_merged_weights_that_load_without_peft(hf_folder, tmp_path):
    run = finetuner.fit(
        str(hf_folder),
        LABELLED,
        lora={"rank": 2},
        output_dim=8,
        epochs=2,
        batch_size=8,
        learning_rate=1e-2,
        cache_dir=tmp_path,
    )
    from finetuner.models.lora import has_lora

    assert has_lora(run.model.backbone)
    lora_params = sum(p.numel() for n, p in run.model.backbone.named_parameters() if "lora_" in n)
    assert lora_params == trainable(run.model.backbone) > 0
    folder = run.save(tmp_path / "lora-model")
    loaded = finetuner.load(folder)
    assert not has_lora(loaded)
    np.testing.assert_allclose(loaded.encode(MOVIES), run.encode(MOVIES), atol=1e-4)


def test_frozen_encoder_linear_probe_uses_the_feature_cache(hf_folder, tmp_path, caplog):
    common = dict(
        model=str(hf_folder),
        train_data=LABELLED,
        freeze=True,
        output_dim=4,
        head="linear",
        epochs=2,
        batch_size=8,
        cache_dir=tmp_path,
    )
    first = finetuner.fit(**common)
    assert trainable(first.model) == 32 * 4 + 4
    import logging

    with caplog.at_level(logging.INFO, logger="finetuner"):
        finetuner.fit(**common)
    assert "reusing cached features" in caplog.text


def test_pairs_train_with_in_batch_negatives_and_report_pair_metrics(hf_folder, tmp_path):
    run = finetuner.fit(str(hf_folder), PAIRS, PAIRS, output_dim=8, epochs=2, batch_size=6, cache_dir=tmp_path)
    assert type(run.model).__name__ == "EmbeddingModel"
    assert {"recall@1", "mrr", "ndcg@5"} <= set(run.metrics["after"])
    assert np.isfinite(run.history[-1]["loss"])


def test_triplets_train_with_hard_negatives(hf_folder, tmp_path):
    triplets = [(query, document, PAIRS[(i + 1) % len(PAIRS)][1]) for i, (query, document) in enumerate(PAIRS)]
    from finetuner.data import load_data

    data = load_data(triplets)
    assert data.negatives == [triplets[i][2] for i in range(len(triplets))]
    run = finetuner.fit(str(hf_folder), triplets, PAIRS, output_dim=8, epochs=2, batch_size=6, cache_dir=tmp_path)
    assert np.isfinite(run.history[-1]["loss"]) and "mrr" in run.metrics["after"]


def test_chop_after_a_block_keeps_that_many_blocks(hf_folder):
    model = finetuner.build_model(str(hf_folder), layer_name="transformer.encoder.layer.1", output_dim=8)
    assert len(model.backbone.transformer.encoder.layer) == 2
    assert model.spec["backbone"]["config"]["num_hidden_layers"] == 2


def test_minilm_from_its_package_gives_sentence_transformers_embeddings():
    from sentence_transformers import SentenceTransformer

    from finetuner.models.hf_text import minilm_path

    model = finetuner.build_model("sentence-transformers/all-MiniLM-L6-v2")
    texts = ["a cat sits on the mat", "stock markets fell today", "the film was great"]
    expected = SentenceTransformer(str(minilm_path()), device="cpu").encode(texts)
    np.testing.assert_allclose(model.encode(texts), expected, atol=1e-5)
    with pytest.raises(ValueError, match="would train nothing"):
        finetuner.build_model("sentence-transformers/all-MiniLM-L6-v2", freeze=True)


def test_frozen_encoder_on_pairs_trains_the_head_on_cached_features_like_the_uncached_path(hf_folder, tmp_path):
    triplets = [(query, document, PAIRS[(i + 1) % len(PAIRS)][1]) for i, (query, document) in enumerate(PAIRS)]
    common = dict(
        model=str(hf_folder),
        train_data=triplets,
        eval_data=PAIRS,
        freeze=True,
        output_dim=4,
        epochs=2,
        batch_size=3,
        optimizer="sgd",
        learning_rate=0.1,
        cache_dir=tmp_path,
        seed=5,
    )
    cached = finetuner.fit(cache=True, **common)
    uncached = finetuner.fit(cache=False, **common)
    for a, b in zip(cached.model.head.state_dict().values(), uncached.model.head.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-4)  # padding differs between the batchings
    assert cached.metrics["after"]["mrr"] == pytest.approx(uncached.metrics["after"]["mrr"], abs=1e-6)

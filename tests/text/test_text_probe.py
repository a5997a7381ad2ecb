"""`probe` on a text encoder: the last blocks' mean-pooled hidden states from one pass, as `truncate_blocks` gives."""

import copy

import torch

from finetuner.inference import batched_outputs
from finetuner.models.hf_text import truncate_blocks
from finetuner.probing import Recipe, layer_candidates, probe
from finetuner.probing.layers import cached_features
from finetuner.training.cache import FeatureCache

TEXTS = [
    ("the cat sat on the mat", "cats"), ("cats sat on a mat", "cats"), ("a cat is good", "cats"),
    ("the cat was bad", "cats"), ("dogs sat", "dogs"), ("a dog is good", "dogs"), ("the dog was awful", "dogs"),
    ("hello dogs", "dogs"), ("a good movie", "films"), ("a great film", "films"), ("an awful movie", "films"),
    ("the film was bad", "films"), ("the sun", "sky"), ("the moon", "sky"), ("sun and moon", "sky"),
    ("hello sun", "sky"),
]  # fmt: skip
CPU = torch.device("cpu")


def test_each_block_equals_the_truncated_encoder(backbone, tmp_path):
    module, candidates = layer_candidates(backbone, 2)
    assert [(c.name, c.layer_name, c.pool) for c in candidates] == [
        ("transformer.encoder.layer.1", "transformer.encoder.layer.1", "mean"),
        ("transformer.encoder.layer.2", None, "mean"),  # the last block: the encoder as it is
    ]
    texts = [text for text, _ in TEXTS]
    found = cached_features(
        backbone, module, candidates, {"train": texts}, FeatureCache(tmp_path), device=CPU, num_workers=0
    )["train"]
    for candidate in candidates:
        encoder = truncate_blocks(copy.deepcopy(backbone.module), candidate.name).eval()
        expected = batched_outputs(lambda x, e=encoder: e(x), texts, backbone.preprocessing, device=CPU)
        torch.testing.assert_close(found[candidate.name], torch.from_numpy(expected), rtol=1e-5, atol=1e-5)


def test_probe_ranks_blocks_and_heads(backbone, tmp_path):
    board = probe(
        backbone, TEXTS, heads=["none", "linear:8"], layers=["transformer.encoder.layer.0"],
        recipe=Recipe(epochs=1, batch_size=8, device="cpu"), cache_dir=tmp_path, num_workers=0, val_split=0.5,
    )  # fmt: skip
    assert [(row.layer, row.head) for row in sorted(board, key=lambda r: r.head)] == [
        ("transformer.encoder.layer.0", "linear"),
        ("transformer.encoder.layer.0", "none"),
    ]
    assert set(board.best.metrics) == {"items", "classes"}
    assert board.best.fit_options()["layer_name"] == "transformer.encoder.layer.0"

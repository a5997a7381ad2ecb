"""A frozen text encoder (dict inputs, a dynamic sequence axis) runs in onnxruntime as it does in PyTorch."""

import torch

from finetuner.inference import batched_outputs
from finetuner.training.cache import FeatureCache, fingerprint_module

CPU = torch.device("cpu")
TEXTS = ["the cat sat on the mat", "dogs", "hello world", "a good movie, a great film!", "the sun", "moon"] * 2


def test_text_features_match_pytorch_in_onnxruntime(backbone, tmp_path):
    encoder = backbone.module.eval().requires_grad_(False)
    cache = FeatureCache(tmp_path, engine="onnxruntime")
    options = {"device": CPU, "batch_size": 4, "num_workers": 0}  # batches sorted by length: each its own length
    features = cache.features(encoder, fingerprint_module(encoder), TEXTS, backbone.preprocessing, **options)[0]
    assert cache.engines == {"data": "onnxruntime"}
    expected = batched_outputs(encoder, TEXTS, backbone.preprocessing, **options)
    assert abs(features.numpy() - expected).max() <= 1e-4 * max(1.0, abs(expected).max())

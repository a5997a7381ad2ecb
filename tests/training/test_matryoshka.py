"""Matryoshka losses against a naive sum over prefixes, and ``truncate_dim`` at encode and in saved models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import finetuner
from finetuner.training import build_loss
from finetuner.training.losses import MatryoshkaLoss, compose_loss
from finetuner.training.pair_losses import CachedLoss, MatryoshkaPairLoss, MultipleNegativesRankingLoss


def test_pair_loss_is_the_weighted_sum_over_renormalised_prefixes():
    query, document, negatives = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 8)
    base = MultipleNegativesRankingLoss(scale=5.0)
    loss = MatryoshkaPairLoss(base, dims=(8, 3), weights=(1.0, 0.5))
    expected = sum(
        weight * base(F.normalize(query[:, :d]), F.normalize(document[:, :d]), None, F.normalize(negatives[:, :d]))
        for d, weight in ((8, 1.0), (3, 0.5))
    )
    assert loss(query, document, negatives=negatives).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.uses_negatives and not loss.uses_scores


def test_labelled_loss_is_the_sum_over_prefixes_with_the_miners_indices():
    embeddings, labels = torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 2])
    base = build_loss("TripletMarginLoss")
    indices = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([2, 0]))
    expected = sum(base(F.normalize(embeddings[:, :d]), labels, indices) for d in (8, 4, 2))
    assert MatryoshkaLoss(base, (8, 4, 2))(embeddings, labels, indices).item() == pytest.approx(expected.item())


def test_compose_loss_wraps_matryoshka_inside_the_cache_and_refuses_what_cannot_be_truncated():
    loss = compose_loss(build_loss("InfoNCELoss"), matryoshka_dims=(8, 4), mini_batch_size=2, embedding_dim=8)
    assert isinstance(loss, CachedLoss) and isinstance(loss.loss, MatryoshkaPairLoss)
    with pytest.raises(ValueError, match=r"matryoshka_dims \(16, 4\) asks for more than the model's 8 dimensions"):
        compose_loss(build_loss("InfoNCELoss"), matryoshka_dims=(16, 4), embedding_dim=8)
    with pytest.raises(ValueError, match="CrossEntropyLoss cannot take"):
        compose_loss(build_loss("CrossEntropyLoss"), matryoshka_dims=(4,))
    with pytest.raises(ValueError, match="ArcFaceLoss cannot take"):
        compose_loss(build_loss("ArcFaceLoss", num_classes=3, embedding_dim=8), matryoshka_dims=(4,))
    with pytest.raises(ValueError, match="asks for 16 dimensions of 8-d embeddings"):
        MatryoshkaPairLoss(dims=(16,))(torch.randn(2, 8), torch.randn(2, 8))


def test_fit_with_matryoshka_dims_then_encode_truncated_and_save_the_default(small_data, tmp_path):
    run = finetuner.fit(
        "test_cnn", small_data, pretrained=False, freeze=True, output_dim=8, epochs=1, batch_size=16,
        matryoshka_dims=(8, 4), val_split=0, val_class_split=0, cache_dir=tmp_path / "cache",
    )  # fmt: skip
    model, items = run.model, small_data.items[:5]
    full = model.encode(items, normalize=False)
    short = model.encode(items, truncate_dim=4)
    np.testing.assert_allclose(short, full[:, :4] / np.linalg.norm(full[:, :4], axis=1, keepdims=True), rtol=1e-5)
    model.truncate_dim = 4
    model.save(tmp_path / "model")
    loaded = finetuner.load(tmp_path / "model")
    assert loaded.spec["truncate_dim"] == 4 and loaded.encode(items).shape == (5, 4)
    np.testing.assert_allclose(loaded.encode(items), short, rtol=1e-5)
    assert loaded.encode(items, truncate_dim=8).shape == (5, 8)
    loaded.build_index(items)
    assert loaded.search(items[:1], k=1)[0][0]["id"] == 0  # search encodes with the default too
    with pytest.raises(ValueError, match="truncate_dim=9 is larger than the 8-d embedding"):
        model.encode(items, truncate_dim=9)
    with pytest.raises(ValueError, match="truncate_dim must be a positive number of dimensions"):
        model.truncate_dim = 0

"""`ResidualProjectionHead`: it starts where the backbone is (PCA truncation, or the features themselves), its
residual branch starts at zero and trains, and it saves and loads like any head."""

import json

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import finetuner
from finetuner.tailor import ResidualProjectionHead, create_head, head_from_config


def features(n: int = 200, d: int = 32, seed: int = 0) -> torch.Tensor:
    """Anisotropic features with an offset, like a backbone's (a common mean, a few strong directions)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(1, -1, d)
    return torch.randn(n, d, generator=g) * scales + 3.0


def cosine(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def ranking(x) -> np.ndarray:
    """Each row's neighbours by cosine similarity, best first (self excluded)."""
    sims = cosine(x)
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")


def test_after_initialize_the_head_is_the_pca_truncation():
    x = features()
    head = ResidualProjectionHead(32, 8).eval()
    head.initialize(x)
    with torch.no_grad():
        out = head(x).numpy()
    reference = PCA(n_components=8, svd_solver="full").fit(x.numpy()).transform(x.numpy())
    np.testing.assert_allclose(np.abs(out), np.abs(reference), atol=1e-4)  # equal up to each component's sign
    np.testing.assert_allclose(cosine(out), cosine(reference), atol=1e-5)
    assert (ranking(out)[:, :5] == ranking(reference)[:, :5]).mean() > 0.99  # ties may swap in float32


def test_equal_sizes_keep_the_features_ranking():
    x = features(d=16)
    centred = ResidualProjectionHead(16, 16).eval()
    centred.initialize(x)
    raw = ResidualProjectionHead(16, 16, center=False).eval()
    raw.initialize(x)
    with torch.no_grad():
        torch.testing.assert_close(raw(x), x)  # exactly the features
        torch.testing.assert_close(centred(x), x - x.mean(0), atol=1e-5, rtol=1e-5)
    assert (ranking(raw(x).detach()) == ranking(x)).all()


def test_a_wider_output_holds_the_features_then_zeros():
    x = features(d=8)
    head = ResidualProjectionHead(8, 12).eval()
    head.initialize(x)
    with torch.no_grad():
        out = head(x)
    torch.testing.assert_close(out[:, :8], x - x.mean(0), atol=1e-5, rtol=1e-5)
    assert torch.equal(out[:, 8:], torch.zeros(len(x), 4))


def test_fewer_items_than_dimensions_still_give_an_orthonormal_projection():
    head = ResidualProjectionHead(32, 16)
    head.initialize(features(n=5, d=32))
    weight = head.linear.weight.detach().double()
    torch.testing.assert_close(weight @ weight.T, torch.eye(16, dtype=torch.float64), atol=1e-5, rtol=0)


def test_the_residual_branch_starts_at_zero_and_trains():
    x = features(n=64, d=16)
    head = ResidualProjectionHead(16, 8, hidden_features=24)
    head.initialize(x)
    assert not head.residual(x).any()
    with torch.no_grad():
        torch.testing.assert_close(head(x), head.linear(x))
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    head(x).pow(2).sum().backward()
    assert head.residual[-1].weight.grad.abs().sum() > 0  # zero weights still get a gradient
    optimizer.step()
    assert head.residual(x).abs().sum() > 0
    head.initialize(x)  # initialising again starts over: the residual is zero again
    assert not head.residual(x).any()


def test_without_initialize_it_still_works():
    x = features(n=10, d=16)
    assert torch.equal(ResidualProjectionHead(16, 16)(x), x)  # equal sizes: the identity
    head = ResidualProjectionHead(16, 4)
    weight = head.linear.weight.detach()
    torch.testing.assert_close(weight @ weight.T, torch.eye(4), atol=1e-5, rtol=0)  # a random orthonormal projection
    assert head(x).shape == (10, 4) and torch.isfinite(head(x)).all()
    assert torch.allclose(ResidualProjectionHead(16, 4, normalize=True)(x).norm(dim=1), torch.ones(10))


def test_config_round_trip_by_name_and_state_dict():
    head = create_head("residual", 16, 8, hidden_features=12, residual_scale=0.25, center=False, normalize=True)
    head.initialize(features(d=16))
    torch.nn.init.normal_(head.residual[-1].weight)  # as if trained
    config = json.loads(json.dumps(head.to_config()))
    assert config["type"] == "ResidualProjectionHead" and config["residual_scale"] == 0.25
    rebuilt = head_from_config(config)
    assert rebuilt.config() == head.config()
    rebuilt.load_state_dict(head.state_dict())
    x = torch.randn(5, 16)
    assert torch.equal(rebuilt.eval()(x), head.eval()(x))


def test_saved_and_loaded_with_a_model(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    model = finetuner.build_model("test_cnn", pretrained=False, freeze=True, output_dim=8, head="residual")
    assert type(model.head) is ResidualProjectionHead
    model.head.initialize(torch.randn(50, model.head.in_features))
    model.save(tmp_path / "model")
    loaded = finetuner.load(tmp_path / "model")
    assert type(loaded.head) is ResidualProjectionHead
    np.testing.assert_allclose(loaded.encode(list(images)), model.eval().encode(list(images)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (torch.randn(10, 7), r"shape \(N >= 2, 16\), got \(10, 7\)"),
        (torch.randn(1, 16), r"got \(1, 16\)"),
        (torch.randn(16), r"got \(16,\)"),
        (torch.full((4, 16), float("nan")), "non-finite"),
    ],
)
def test_bad_samples_are_refused(sample, message):
    with pytest.raises(ValueError, match=message):
        ResidualProjectionHead(16, 8).initialize(sample)


def test_a_negative_residual_scale_is_refused():
    with pytest.raises(ValueError, match="residual_scale must be >= 0"):
        ResidualProjectionHead(16, 8, residual_scale=-1)

"""Shared test settings: CPU only, deterministic, quiet, and never the network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import tiny_backend  # noqa: E402, F401  (registers the tiny test models test_cnn and test_vit)
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models: threads cost more than they save on shared cores


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Weights and cached features go to a temporary folder, never to the user's ~/.cache."""
    os.environ["FINETUNER_CACHE"] = str(tmp_path_factory.mktemp("finetuner-cache"))


def _fashion_subset(split: str, classes: tuple[int, ...], per_class: int):
    from finetuner.data import load_fashion_mnist

    data = load_fashion_mnist(split)
    picked = [i for c in classes for i in [j for j, label in enumerate(data.labels) if label == c][:per_class]]
    return data.subset(picked)


@pytest.fixture(scope="session")
def small_data():
    """48 Fashion-MNIST training images of 4 classes (28×28 uint8 arrays)."""
    return _fashion_subset("train", (0, 1, 7, 8), 12)


@pytest.fixture(scope="session")
def eval_data():
    """40 held-out Fashion-MNIST images of the same 4 classes."""
    return _fashion_subset("test", (0, 1, 7, 8), 10)


@pytest.fixture(scope="session")
def easy_data():
    """80 images of 4 visually distinct classes (T-shirt, Trouser, Sneaker, Bag)."""
    return _fashion_subset("train", (0, 1, 7, 8), 20)

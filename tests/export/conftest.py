"""Export fixtures: tiny image and text models (random weights), and images on disk in several formats."""

import numpy as np
import pytest

import finetuner
from tests.text.conftest import hf_folder, tiny_config, tokenizer  # noqa: F401  (the tiny BERT fixtures)

TEXTS = ["the cat sat on the mat", "hello world", "a good movie, a great film!", "dogs", "the sun and the moon"]


@pytest.fixture(scope="session")
def image_items(tmp_path_factory):
    """Images as a PNG, a JPEG, a grayscale array, an RGBA PIL image and a non-square RGB array."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(folder / "b.jpg", quality=90)
    rgba = Image.fromarray(rng.integers(0, 255, (33, 33, 4), dtype=np.uint8), mode="RGBA")
    return [
        str(folder / "a.png"),
        folder / "b.jpg",
        rng.integers(0, 255, (28, 28), dtype=np.uint8),
        rgba,
        rng.integers(0, 255, (20, 37, 3), dtype=np.uint8),
    ]


@pytest.fixture(scope="session")
def image_model():
    """test_cnn with a projection head (BatchNorm in it), 32x32 inputs."""
    model = finetuner.build_model("test_cnn", pretrained=False, output_dim=16, head="projection")
    model.head.layers[1].running_mean.uniform_(-0.5, 0.5)  # BatchNorm statistics that are not the identity
    model.head.layers[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="session")
def text_model(hf_folder):  # noqa: F811
    """The tiny 3-block BERT (mean pooling) with a linear head."""
    return finetuner.build_model(str(hf_folder), output_dim=8, head="linear").eval()

"""Thumbnails of example items: arrays, tensors, PIL images and files become PNGs; text stays text."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from finetuner.report._images import thumbnail_png


def _open(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png))


@pytest.mark.parametrize(
    "item",
    [
        np.zeros((28, 28), dtype=np.uint8),
        np.zeros((28, 14, 1), dtype=np.uint8),
        np.zeros((200, 100, 4), dtype=np.uint8),
        np.random.default_rng(0).standard_normal((16, 16, 3)),  # not uint8: min-max scaled
        torch.randn(3, 32, 32),  # preprocessed tensor (C, H, W)
        Image.new("P", (50, 50)),
    ],
)
def test_images_fit_the_thumbnail_box(item):
    image = _open(thumbnail_png(item, size=64))
    assert max(image.size) == 64


def test_aspect_ratio_is_kept(tmp_path):
    path = tmp_path / "wide.jpg"
    Image.new("RGB", (300, 150)).save(path)
    assert _open(thumbnail_png(path, size=100)).size == (100, 50)
    assert _open(thumbnail_png(str(path), size=100)).size == (100, 50)


@pytest.mark.parametrize("item", ["a red dress", "x" * 5000, "missing.jpg", 42])
def test_text_and_non_images_give_none(item):
    assert thumbnail_png(item) is None


def test_unreadable_file_gives_none(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image")
    assert thumbnail_png(path) is None


def test_bad_array_shape_raises():
    with pytest.raises(ValueError, match="shape"):
        thumbnail_png(np.zeros((4, 4, 5), dtype=np.uint8))

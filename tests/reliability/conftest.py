"""Tiny data and a tiny saved model for the reliability tests: what users see when things go wrong."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import finetuner
from finetuner.data import LabeledData


def image_files(folder: Path, count: int = 16, classes: int = 4) -> LabeledData:
    """``count`` random 32×32 PNG files in ``classes`` classes, as labelled data."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return LabeledData(paths, [i % classes for i in range(count)], [f"c{c}" for c in range(classes)])


@pytest.fixture
def files(tmp_path: Path) -> LabeledData:
    return image_files(tmp_path / "images")


@pytest.fixture
def arrays() -> LabeledData:
    """24 random 32×32 uint8 images of 4 classes, in memory."""
    rng = np.random.default_rng(1)
    items = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(24)]
    return LabeledData(items, [i % 4 for i in range(24)], ["a", "b", "c", "d"])


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A tiny model (test_cnn, 8-d projection head) saved with `save()`; copy it before damaging it."""
    folder = tmp_path_factory.mktemp("saved") / "model"
    finetuner.build_model("test_cnn", pretrained=False, output_dim=8).save(folder)
    return folder

"""Tiny generated images for the data tests."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, colour=(255, 0, 0), mode: str = "RGB", size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """``root/{cat,dog,fish}/``: 3, 2 and 1 images, mixed formats and colour modes."""
    root = tmp_path / "images"
    write_image(root / "cat" / "a.jpg", (200, 10, 10))
    write_image(root / "cat" / "b.png", (128,), mode="L")
    write_image(root / "cat" / "c.PNG", (0, 0, 255, 0), mode="RGBA")
    write_image(root / "dog" / "a.jpg", (10, 200, 10))
    write_image(root / "dog" / "sub" / "b.bmp", (10, 200, 10))
    write_image(root / "fish" / "x.webp", (0, 0, 0))
    return root


@pytest.fixture
def corrupt_jpg(tmp_path: Path) -> Path:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" + np.random.default_rng(0).bytes(64))
    return path

"""Thumbnails of example items (paths, arrays, PIL images, tensors) as PNG bytes; text items stay text."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

THUMBNAIL_SIZE = 112


def thumbnail_png(item: Any, size: int = THUMBNAIL_SIZE) -> bytes | None:
    """PNG bytes of ``item`` fitted into a ``size`` square, or None when ``item`` is text (or an unreadable file).

    Images are a path to an image file (`str` or `Path`), a PIL image, an array ``(H, W)`` / ``(H, W, C)`` (uint8, or
    any other dtype, which is min-max scaled for display) or a tensor ``(C, H, W)`` (already preprocessed). Small
    images are enlarged with nearest-neighbour sampling, so their pixels stay sharp.
    """
    from PIL import Image

    image = _to_image(item)
    if image is None:
        return None
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _to_image(item: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (str, os.PathLike)):
        if not _is_file(item):
            return None  # text
        try:
            with Image.open(item) as image:
                image.load()
                return image
        except (UnidentifiedImageError, OSError):
            return None
    if hasattr(item, "detach"):  # a torch tensor (C, H, W), without importing torch here
        array = item.detach().cpu().numpy()
        return _array_image(np.moveaxis(array, 0, -1) if array.ndim == 3 else array)
    if isinstance(item, np.ndarray):
        return _array_image(item)
    return None


def _is_file(item: str | os.PathLike) -> bool:
    try:
        return Path(item).is_file()
    except (OSError, ValueError):  # text too long for a file name, or with a NUL character
        return False


def _array_image(array: np.ndarray) -> Any:
    from PIL import Image

    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"Cannot show an array of shape {array.shape} as an image; expected (H, W) or (H, W, 3|4).")
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = ((array - low) / max(high - low, 1e-12) * 255).round().astype(np.uint8)
    return Image.fromarray(array)

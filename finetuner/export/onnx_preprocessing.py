"""Preprocessing for `OnnxEncoder`, in PIL + numpy (images) and ``tokenizers`` (texts): no PyTorch at run time.

`ImageArrays` reproduces the *eval* transform of `finetuner.data.ImagePreprocessing` (decode, RGB/L conversion,
resize of the shorter side to ``size / crop_pct``, center crop, scale to [0, 1], mean/std) step by step as
torchvision does it on PIL images, so an exported model gives the same vectors as `EmbeddingModel.encode`.
`TextArrays` runs the model's fast tokenizer, saved with its truncation and padding settings. That twin of the
torch pipeline is on purpose (this module must import without torch); tests/export/test_onnx_model.py checks the
two agree.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# torchvision's InterpolationMode values -> PIL resampling filters (torchvision.transforms.functional's table)
_PIL_FILTERS = {"nearest": 0, "nearest-exact": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}


class ImageArrays:
    """Image paths, PIL images or uint8 arrays -> a float32 ``(B, C, H, W)`` batch, as `ImagePreprocessing` (eval).

    Args:
        config: ``ImagePreprocessing.to_config()``: ``input_size``, ``mean``, ``std``, ``interpolation``,
            ``crop_pct``.

    Example:
        >>> prep = ImageArrays({"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.5] * 3,
        ...                     "interpolation": "bicubic", "crop_pct": 1.0})
        >>> prep([np.zeros((28, 28), dtype=np.uint8)]).shape
        (1, 3, 32, 32)
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.input_size = tuple(int(v) for v in config["input_size"])
        channels = self.input_size[0]
        self.mode = "RGB" if channels == 3 else "L"
        self.mean = np.asarray(config["mean"], dtype=np.float32).reshape(channels, 1, 1)
        self.std = np.asarray(config["std"], dtype=np.float32).reshape(channels, 1, 1)
        self.crop_pct = float(config["crop_pct"])
        interpolation = config.get("interpolation", "bicubic")
        if interpolation not in _PIL_FILTERS:
            raise ValueError(f"interpolation {interpolation!r} has no PIL filter; use one of {sorted(_PIL_FILTERS)}")
        self.resample = _PIL_FILTERS[interpolation]

    def __call__(self, items: Sequence[Any]) -> np.ndarray:
        return np.stack([self.load(item) for item in items])

    def load(self, item: Any) -> np.ndarray:
        """One item as a float32 ``(C, H, W)`` array."""
        image = self._decode(item)
        height, width = self.input_size[1:]
        image = image.resize(self._resized_size(image.width, image.height), resample=self.resample)
        top = int(round((image.height - height) / 2.0))  # torchvision's anchor: Python's round, ties to even
        left = int(round((image.width - width) / 2.0))
        pixels = np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.uint8)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        scaled = pixels.astype(np.float32) * np.float32(1.0 / 255)
        return (scaled - self.mean) / self.std

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize: shorter side to ``size / crop_pct`` for square inputs, else both."""
        out_height, out_width = self.input_size[1:]
        if out_height != out_width:
            return math.floor(out_width / self.crop_pct), math.floor(out_height / self.crop_pct)
        short_target = math.floor(out_height / self.crop_pct)
        short, long = (width, height) if width <= height else (height, width)
        long_target = int(short_target * long / short)
        return (short_target, long_target) if width <= height else (long_target, short_target)

    def _decode(self, item: Any):
        from PIL import Image, ImageOps

        if isinstance(item, (str, os.PathLike)):
            with Image.open(Path(item)) as image:
                if image.format == "JPEG":  # as ImagePreprocessing: let libjpeg decode at a reduced scale
                    side = math.ceil(max(self.input_size[1:]) / self.crop_pct)
                    image.draft(self.mode, (side, side))
                image.load()
                return _convert(ImageOps.exif_transpose(image), self.mode)
        if isinstance(item, np.ndarray):
            array = item[:, :, 0] if item.ndim == 3 and item.shape[2] == 1 else item
            if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
                raise ValueError(
                    f"an image array must be uint8 with shape (H, W) or (H, W, 1|3|4), got {array.dtype} with "
                    f"shape {array.shape}; scale float images to 0..255 and cast with .astype(np.uint8)"
                )
            return _convert(Image.fromarray(np.ascontiguousarray(array)), self.mode)
        if isinstance(item, Image.Image):
            return _convert(item, self.mode)
        raise ValueError(
            f"cannot load an image from a {type(item).__name__}: pass a path, a PIL.Image or a uint8 numpy array"
        )


def _convert(image, mode: str):
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")  # transparent pixels become white, as in ImagePreprocessing
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image if image.mode == mode else image.convert(mode)


class TextArrays:
    """Texts -> ``input_ids``, ``attention_mask``, ``token_type_ids`` int64 arrays, with a ``tokenizers`` file
    that already holds the model's truncation (``max_length``) and padding (to the longest text) settings.

    Args:
        tokenizer_json: the ``tokenizer.json`` content, as `text_tokenizer_json` writes it.

    Example:
        >>> arrays = TextArrays(text_tokenizer_json(model.preprocessing))  # doctest: +SKIP
        >>> sorted(arrays(["a cat", "a dog sat"]))  # doctest: +SKIP
        ['attention_mask', 'input_ids', 'token_type_ids']
    """

    def __init__(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        bad = [text for text in texts if not isinstance(text, str)]
        if bad:
            raise ValueError(f"a text model takes strings, got a {type(bad[0]).__name__} ({bad[0]!r:.60})")
        encodings = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
        }


def text_tokenizer_json(preprocessing: Any) -> str:
    """The ``tokenizer.json`` of a `TextPreprocessing`, set to truncate at its ``max_length`` and to pad batches to
    their longest text, as its ``collate`` does (a Hugging Face *fast* tokenizer is needed).

    Example:
        >>> TextArrays(text_tokenizer_json(model.preprocessing))(["hello"])["input_ids"].shape  # doctest: +SKIP
        (1, 3)
    """
    tokenizer = preprocessing.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"{type(tokenizer).__name__} is a slow (Python) tokenizer, which cannot run without transformers: "
            "save the model with a fast tokenizer (AutoTokenizer.from_pretrained(folder, use_fast=True))."
        )
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.enable_truncation(max_length=preprocessing.max_length, strategy="longest_first")
    copy.enable_padding(
        direction=tokenizer.padding_side,
        pad_id=tokenizer.pad_token_id,
        pad_type_id=tokenizer.pad_token_type_id,
        pad_token=tokenizer.pad_token,
    )
    return copy.to_str()


def arrays_for(preprocessing: Mapping[str, Any]) -> ImageArrays | TextArrays:
    """The numpy preprocessing for a stored preprocessing description (``kind`` image or text)."""
    kind = preprocessing.get("kind")
    if kind == "image":
        return ImageArrays(preprocessing)
    if kind == "text":
        return TextArrays(json.dumps(preprocessing["tokenizer"]))
    raise ValueError(f"no ONNX Runtime preprocessing for kind={kind!r}: image and text models are supported")

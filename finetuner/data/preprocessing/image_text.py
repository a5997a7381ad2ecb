"""`ImageTextPreprocessing`: one preprocessing for image–text models (CLIP): images through an
`ImagePreprocessing`, texts through open_clip's tokenizer (its BPE vocabulary ships with open_clip)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from finetuner.data.errors import DataError
from finetuner.data.formats import IMAGE_EXTENSIONS
from finetuner.data.preprocessing.base import register_preprocessing
from finetuner.data.preprocessing.image import ImagePreprocessing


def is_text(item: Any) -> bool:
    """A string that does not name an image file is a text."""
    return isinstance(item, str) and not (Path(item).suffix.lower() in IMAGE_EXTENSIONS and os.path.isfile(item))


@register_preprocessing("image_text")
@dataclass(frozen=True)
class ImageTextPreprocessing:
    """Images become ``(3, H, W)`` tensors, texts ``(context_length,)`` token ids; a batch holds one kind.

    Example:
        >>> prep = ImageTextPreprocessing(ImagePreprocessing(input_size=(3, 32, 32)), context_length=16)
        >>> prep.collate([prep.load("a photo of a cat", train=False)]).shape
        torch.Size([1, 16])
    """

    image: ImagePreprocessing = field(default_factory=ImagePreprocessing)
    context_length: int = 77
    kind = "image_text"

    @property
    def input_size(self) -> tuple[int, ...]:
        """The image input size (what example image batches are built with)."""
        return self.image.input_size

    @cached_property
    def _tokenizer(self) -> Any:
        import open_clip

        return open_clip.SimpleTokenizer(context_length=self.context_length)

    def load(self, item: Any, train: bool) -> torch.Tensor:
        if is_text(item):
            return self._tokenizer([item])[0]
        return self.image.load(item, train)

    def collate(self, samples: list[torch.Tensor]) -> torch.Tensor:
        if len({sample.is_floating_point() for sample in samples}) > 1:
            raise DataError("a batch mixes images and texts: encode images and texts in separate calls")
        return torch.stack(samples) if not samples[0].is_floating_point() else self.image.collate(samples)

    def to_config(self) -> dict:
        return {"kind": self.kind, "image": self.image.to_config(), "context_length": self.context_length}

    def save(self, folder: str | os.PathLike) -> None:
        """Nothing to write: the tokenizer's vocabulary ships with open_clip."""

    @classmethod
    def from_config(cls, config: dict, folder: str | os.PathLike | None = None) -> ImageTextPreprocessing:
        return cls(ImagePreprocessing.from_config(config["image"]), context_length=config["context_length"])

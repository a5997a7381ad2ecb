"""`ImagePreprocessing`: decode images and transform them the timm way (preprocessing kind ``"image"``)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode, v2

from finetuner.data.errors import DataError
from finetuner.data.formats.base import is_image_path
from finetuner.data.preprocessing.base import register_preprocessing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = (None, "light")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@register_preprocessing("image")
@dataclass(frozen=True)
class ImagePreprocessing:
    """Image decoding and transforms, following the timm conventions.

    Eval: resize the shorter side to ``size / crop_pct``, then center-crop to ``input_size``.
    Train with ``augment="light"``: ``RandomResizedCrop(scale=(0.5, 1))`` and a horizontal flip; with
    ``augment=None`` the train transform is the eval transform. Both end with scaling to ``[0, 1]`` and
    ``Normalize(mean, std)``. Images are converted to RGB (or to grayscale for 1-channel inputs);
    transparent pixels become white.

    Args:
        input_size: ``(channels, height, width)`` the model expects; channels is 3 or 1.
        mean: per-channel mean for normalisation.
        std: per-channel standard deviation for normalisation.
        interpolation: resize filter: ``"bicubic"``, ``"bilinear"``, ``"nearest"``, ``"lanczos"``, ...
        crop_pct: fraction of the resized image kept by the center crop (timm's ``crop_pct``).
        augment: ``"light"`` or ``None``.

    Example:
        >>> import numpy as np
        >>> prep = ImagePreprocessing(input_size=(3, 32, 32))
        >>> prep.load(np.zeros((28, 28), dtype=np.uint8), train=False).shape
        torch.Size([3, 32, 32])
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    augment: str | None = "light"
    kind: str = field(default="image", init=False, repr=False)

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so the object stays hashable and comparable.
        for name in ("input_size", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        channels = self.input_size[0] if len(self.input_size) == 3 else None
        if channels not in (1, 3) or min(self.input_size) < 1:
            raise ValueError(f"input_size must be (channels, height, width), channels 1 or 3, got {self.input_size}")
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean {self.mean} and std {self.std} need {channels} values, one per channel")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be positive, got {self.std}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        try:
            InterpolationMode(self.interpolation)
        except ValueError:
            choices = [mode.value for mode in InterpolationMode]
            raise ValueError(f"unknown interpolation {self.interpolation!r}: expected one of {choices}") from None

    @classmethod
    def from_timm(cls, cfg: Any, augment: str | None = "light") -> ImagePreprocessing:
        """Build from a timm ``pretrained_cfg`` (dict or ``PretrainedCfg``) or a resolved data config.

        timm's ``crop_mode`` is not used: the eval transform always center-crops.

        Args:
            cfg: has ``input_size``, ``mean``, ``std`` and optionally ``interpolation``, ``crop_pct``.
            augment: the training augmentation, ``"light"`` or ``None``.

        Returns:
            The matching ``ImagePreprocessing``.

        Example:
            >>> cfg = {"input_size": (3, 240, 240), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
            ...        "interpolation": "bilinear", "crop_pct": 0.9}
            >>> ImagePreprocessing.from_timm(cfg).input_size
            (3, 240, 240)
        """
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        interpolation = cfg.get("interpolation") or "bicubic"
        return cls(
            input_size=cfg.get("input_size", (3, 224, 224)),
            mean=cfg.get("mean", IMAGENET_MEAN),
            std=cfg.get("std", IMAGENET_STD),
            # timm's "random" picks a filter per image in training; bicubic is its eval choice.
            interpolation="bicubic" if interpolation == "random" else interpolation,
            crop_pct=cfg.get("crop_pct") or 0.875,
            augment=augment,
        )

    def to_config(self) -> dict:
        """A JSON-serialisable dict, the inverse of ``from_config``.

        Example:
            >>> ImagePreprocessing(input_size=(3, 32, 32)).to_config()["input_size"]
            [3, 32, 32]
        """
        config = asdict(self)
        return {**config, **{name: list(config[name]) for name in ("input_size", "mean", "std")}}

    def save(self, folder: str | os.PathLike) -> None:
        """Nothing to write: ``to_config()`` holds everything."""

    @classmethod
    def from_config(cls, config: dict, folder: str | os.PathLike | None = None) -> ImagePreprocessing:
        """Rebuild from ``to_config()`` output.

        Example:
            >>> prep = ImagePreprocessing(input_size=(3, 32, 32), augment=None)
            >>> ImagePreprocessing.from_config(prep.to_config()) == prep
            True
        """
        config = dict(config)
        kind = config.pop("kind", "image")
        if kind != "image":
            raise ValueError(f"not an image preprocessing config: kind={kind!r}")
        return cls(**config)

    def load(self, item: Any, train: bool) -> torch.Tensor:
        """Decode one item and transform it into a ``(C, H, W)`` float tensor.

        Args:
            item: a path, a ``PIL.Image``, a uint8 (or 16-bit) ``np.ndarray`` (H, W) or (H, W, C), a uint8 tensor
                (C, H, W) (treated as a raw image), or a float tensor (C, H, W) already preprocessed,
                which is returned as is.
            train: use the training transform (random augmentation) instead of the eval one.

        Returns:
            The model input for this item.

        Raises:
            DataError: the item cannot be decoded; for a file, the message names the path.

        Example:
            >>> from PIL import Image
            >>> ImagePreprocessing(input_size=(3, 64, 64)).load(Image.new("RGBA", (80, 90)), train=True).shape
            torch.Size([3, 64, 64])
        """
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            if item.ndim != 3:
                raise DataError(f"a preprocessed image tensor must be (C, H, W), got shape {tuple(item.shape)}")
            return item
        transform = self._train_transform if train else self._eval_transform
        return transform(self._decode(item, train)).as_subclass(torch.Tensor)

    def check_items(self, items: Sequence[Any], what: str) -> None:
        """Refuse, before anything trains, paths an image model cannot read: free text given to an image model
        (a text data set), and image files that do not exist. Arrays, tensors and images are checked as they load.

        Raises:
            DataError: naming ``what`` (``training data``), an example and the fix.

        Example:
            >>> prep.check_items(["a red shoe", "a blue hat"], "training data")  # doctest: +SKIP
            Traceback (most recent call last):
            DataError: training data holds texts ('a red shoe', ...), but this is an image model: ...
        """
        paths = [item for item in items if isinstance(item, (str, os.PathLike))]
        missing = [path for path in paths if not os.path.isfile(path)]
        if not missing:
            return
        texts = [path for path in missing[:64] if isinstance(path, str) and not is_image_path(path)]
        if len(texts) * 2 > min(len(paths), 64):
            raise DataError(
                f"{what} holds texts ({texts[0]!r:.60}, ...), but this is an image model: it takes image paths. "
                "Use a text model (e.g. model='sentence-transformers/all-MiniLM-L6-v2'), or pass image files"
            )
        raise DataError(
            f"{what}: {len(missing)} of {len(paths)} image files do not exist (first: {missing[0]}): fix the paths "
            "(relative paths are read from the current folder), or drop those rows"
        )

    def collate(self, samples: list[torch.Tensor]) -> torch.Tensor:
        """Stack loaded samples into a ``(B, C, H, W)`` batch.

        Example:
            >>> import torch
            >>> ImagePreprocessing().collate([torch.zeros(3, 224, 224)] * 2).shape
            torch.Size([2, 3, 224, 224])
        """
        shapes = {tuple(sample.shape) for sample in samples}
        if len(shapes) > 1:
            raise DataError(
                f"cannot batch images of different shapes {sorted(shapes)}: "
                "pass raw images, or tensors preprocessed to one input_size"
            )
        return torch.stack(samples)

    @property
    def _mode(self) -> str:
        return "RGB" if self.input_size[0] == 3 else "L"

    @cached_property
    def _eval_transform(self) -> v2.Compose:
        height, width = self.input_size[1:]
        # timm: scale the shorter side for square inputs, both sides otherwise.
        if height == width:
            resize: int | tuple[int, int] = math.floor(height / self.crop_pct)
        else:
            resize = (math.floor(height / self.crop_pct), math.floor(width / self.crop_pct))
        return v2.Compose(
            [
                v2.Resize(resize, interpolation=InterpolationMode(self.interpolation), antialias=True),
                v2.CenterCrop((height, width)),
                *self._to_normalised_tensor(),
            ]
        )

    @cached_property
    def _train_transform(self) -> v2.Compose:
        if self.augment is None:
            return self._eval_transform
        return v2.Compose(
            [
                v2.RandomResizedCrop(
                    self.input_size[1:],
                    scale=(0.5, 1.0),
                    interpolation=InterpolationMode(self.interpolation),
                    antialias=True,
                ),
                v2.RandomHorizontalFlip(),
                *self._to_normalised_tensor(),
            ]
        )

    def _to_normalised_tensor(self) -> list:
        return [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]

    def _decode(self, item: Any, train: bool) -> Image.Image:
        if isinstance(item, (str, os.PathLike)):
            return self._open(Path(item), train)
        if isinstance(item, torch.Tensor):
            if item.dtype != torch.uint8 or item.ndim not in (2, 3):
                raise DataError(
                    f"an image tensor must be uint8 (C, H, W) or float (C, H, W) already "
                    f"preprocessed, got {item.dtype} with shape {tuple(item.shape)}"
                )
            item = item.numpy() if item.ndim == 2 else item.permute(1, 2, 0).numpy()
        if isinstance(item, np.ndarray):
            item = _array_to_image(item)
        if isinstance(item, Image.Image):
            return _convert(item, self._mode)
        raise DataError(
            f"cannot load an image from a {type(item).__name__}: expected a path, a PIL.Image, "
            "a uint8 numpy array (H, W) or (H, W, C), or a (C, H, W) tensor"
        )

    def _open(self, path: Path, train: bool) -> Image.Image:
        try:
            with Image.open(path) as image:
                if image.format == "JPEG":
                    # Let libjpeg decode at a reduced scale, but never below what the crop needs.
                    longest = max(self.input_size[1:])
                    side = 2 * longest if train else math.ceil(longest / self.crop_pct)
                    image.draft(self._mode, (side, side))
                image.load()
                return _convert(ImageOps.exif_transpose(image), self._mode)
        except _DECODE_ERRORS as error:
            raise DataError(
                f"cannot read image {path}: {error}. Remove or replace this file "
                "(or drop it from your CSV/list), then run again."
            ) from error


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint16:
        array = _to_8bit(array, 65535)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise DataError(
            f"an image array must be uint8 or uint16 with shape (H, W) or (H, W, 1|3|4), got {array.dtype} "
            f"with shape {array.shape}; scale float images to 0..255 and cast with .astype(np.uint8)"
        )
    return Image.fromarray(np.ascontiguousarray(array))


def _float_to_8bit(array: np.ndarray) -> np.ndarray:
    """A floating-point grey image (PIL mode ``F``, e.g. a float32 TIFF) in uint8: values in 0..1 are scaled to
    0..255, values in 0..255 kept; any other range (negative, above 255, NaN) is refused rather than guessed."""
    finite = np.isfinite(array)
    low, high = (float(array.min()), float(array.max())) if array.size and finite.all() else (np.nan, np.nan)
    if not (low >= 0 and high <= 255):
        raise DataError(
            f"a floating-point image must hold values in 0..1 or 0..255, this one spans {low:.3g}..{high:.3g}: "
            "rescale it (e.g. to 0..255) and save it as an 8-bit or 16-bit image"
        )
    return np.rint(array * (255.0 if high <= 1.0 else 1.0)).astype(np.uint8)


def _to_8bit(array: np.ndarray, maximum: int) -> np.ndarray:
    """Scale integers in ``0..maximum`` to uint8 ``0..255`` (rounded; values outside are clipped)."""
    return np.rint(np.clip(array, 0, maximum) * (255.0 / maximum)).astype(np.uint8)


def _convert(image: Image.Image, mode: str) -> Image.Image:
    if image.mode == "F":
        image = Image.fromarray(_float_to_8bit(np.asarray(image, dtype=np.float32)))
    if image.mode.startswith("I"):
        # 16-bit grayscale (PNG, TIFF: "I;16*", or "I" from older Pillow): PIL's own conversion clips at 255,
        # which turns most pixels white. Scale the 16-bit range instead (an "I" image within 0..255 stays as is).
        array = np.asarray(image)
        sixteen_bit = image.mode.startswith("I;16") or array.max(initial=0) > 255
        image = Image.fromarray(_to_8bit(array, 65535 if sixteen_bit else 255))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image if image.mode == mode else image.convert(mode)

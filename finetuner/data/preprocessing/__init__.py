"""Preprocessing: turns raw items into model inputs, and travels with the saved model.

One module per kind (``image``, ``text``, ``image_text``), each class registered with
``@register_preprocessing(kind)``; `preprocessing_from_config` finds the kind of a saved config in `PREPROCESSINGS`,
which imports every module of this folder on its first lookup. Adding a kind is one module here and its test.
"""

from finetuner.data.preprocessing.base import (
    PREPROCESSINGS,
    Preprocessing,
    preprocessing_from_config,
    register_preprocessing,
)
from finetuner.data.preprocessing.image import AUGMENTATIONS, IMAGENET_MEAN, IMAGENET_STD, ImagePreprocessing

__all__ = [
    "AUGMENTATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PREPROCESSINGS",
    "ImagePreprocessing",
    "Preprocessing",
    "preprocessing_from_config",
    "register_preprocessing",
]

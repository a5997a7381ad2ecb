"""Data for finetuner: sources (folders, CSVs, lists, pairs, Datasets), preprocessing, samplers, loaders.

Example:
    >>> from finetuner.data import ImagePreprocessing, ItemDataset, load_data, make_loader
    >>> data = load_data("fashion-mnist")
    >>> dataset = ItemDataset(data.items, data.labels, ImagePreprocessing(input_size=(3, 32, 32)), train=True)
    >>> inputs, labels = next(iter(make_loader(dataset, batch_size=8, shuffle=True)))
    >>> inputs.shape
    torch.Size([8, 3, 32, 32])
"""

from finetuner.data.datasets import ItemDataset, PairDataset, default_num_workers, make_loader
from finetuner.data.errors import DataError
from finetuner.data.fashion_mnist import FASHION_MNIST_CLASSES, export_fashion_mnist, load_fashion_mnist
from finetuner.data.loader import Loader
from finetuner.data.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocessing,
    Preprocessing,
    preprocessing_from_config,
)
from finetuner.data.samplers import ClassBalancedSampler
from finetuner.data.sources import (
    IMAGE_EXTENSIONS,
    DatasetItems,
    LabeledData,
    PairData,
    check_labels_for_pair_loss,
    encode_labels,
    load_data,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ClassBalancedSampler",
    "DataError",
    "DatasetItems",
    "ImagePreprocessing",
    "ItemDataset",
    "LabeledData",
    "Loader",
    "PairData",
    "PairDataset",
    "Preprocessing",
    "check_labels_for_pair_loss",
    "default_num_workers",
    "encode_labels",
    "export_fashion_mnist",
    "load_data",
    "load_fashion_mnist",
    "make_loader",
    "preprocessing_from_config",
]

"""Data for finetuner: `load_data` over many formats (folders, CSV, JSONL, Parquet, DataFrames, datasets, lists,
torch Datasets), preprocessing, samplers, loaders.

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
from finetuner.data.formats import (
    IMAGE_EXTENSIONS,
    DataFormat,
    DataKind,
    FileFormat,
    Table,
    list_formats,
    register_format,
    table_to_data,
)
from finetuner.data.holdout import Holdout, HoldoutRows, hold_out, hold_out_indices
from finetuner.data.loader import Loader
from finetuner.data.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocessing,
    Preprocessing,
    preprocessing_from_config,
)
from finetuner.data.records import (
    DatasetItems,
    LabeledData,
    PairData,
    check_at_least_two_classes,
    encode_labels,
    take_items,
)
from finetuner.data.samplers import ClassBalancedSampler, ShuffledBatchSampler
from finetuner.data.sources import load_data
from finetuner.data.vectors import VectorData, VectorPairs, VectorRows, vector_width

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ClassBalancedSampler",
    "DataError",
    "DataFormat",
    "DataKind",
    "DatasetItems",
    "FileFormat",
    "Holdout",
    "HoldoutRows",
    "ImagePreprocessing",
    "ItemDataset",
    "LabeledData",
    "Loader",
    "PairData",
    "PairDataset",
    "Preprocessing",
    "ShuffledBatchSampler",
    "Table",
    "VectorData",
    "VectorPairs",
    "VectorRows",
    "check_at_least_two_classes",
    "default_num_workers",
    "encode_labels",
    "export_fashion_mnist",
    "hold_out",
    "hold_out_indices",
    "list_formats",
    "load_data",
    "load_fashion_mnist",
    "make_loader",
    "preprocessing_from_config",
    "register_format",
    "table_to_data",
    "take_items",
    "vector_width",
]

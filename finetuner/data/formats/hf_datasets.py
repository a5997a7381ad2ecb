"""Hugging Face ``datasets``: a ``Dataset``, or one split of a ``DatasetDict``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import DataFormat, DataKind, register_format
from finetuner.data.formats.table import Table, table_to_data
from finetuner.data.records import DatasetItems, LabeledData, PairData

DEFAULT_SPLIT = "train"


class HFDatasetFormat(DataFormat):
    """A ``datasets.Dataset``, or a ``DatasetDict`` (its ``"train"`` split, or its only one; pass
    ``dataset_dict["test"]`` for another). Text and number columns are read at once; image (and other
    non-scalar) columns stay lazy and are decoded row by row when used; ``ClassLabel`` names become class names.

    Example:
        >>> import datasets
        >>> data = datasets.Dataset.from_dict({"anchor": ["q1", "q2"], "positive": ["d1", "d2"]})
        >>> HFDatasetFormat().read(data, {}, DataKind.AUTO)
        PairData(2 pairs, no scores)
    """

    name = "hf_dataset"
    priority = 70
    description = "a datasets.Dataset or DatasetDict"
    tabular = True

    def can_read(self, source: Any) -> bool:
        datasets = sys.modules.get("datasets")  # a Dataset can only exist once datasets is imported
        return datasets is not None and isinstance(
            source, (datasets.Dataset, datasets.DatasetDict, datasets.IterableDataset, datasets.IterableDatasetDict)
        )

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData | PairData:
        import datasets

        name = f"the {type(source).__name__}"
        if isinstance(source, (datasets.IterableDataset, datasets.IterableDatasetDict)):
            raise DataError(
                f"{name} is streamed, which finetuner does not read yet: load it without streaming=True"
            )
        if isinstance(source, datasets.DatasetDict):
            split = _pick_split(source)
            source, name = source[split], f"split {split!r} of the DatasetDict"
        features = source.features
        arrow = source.with_format("arrow")

        def read_column(column: str) -> Sequence:
            feature = features[column]
            if isinstance(feature, (datasets.Value, datasets.ClassLabel)):
                return arrow[column].to_pylist()
            if _is_vector(feature):  # a column of embeddings: numbers, read whole (they become one array)
                return list(source.with_format("numpy")[column])
            return DatasetItems(source.select_columns([column]), key=column)  # images: decoded where used

        class_names = {
            column: feature.names for column, feature in features.items() if isinstance(feature, datasets.ClassLabel)
        }
        table = Table(name, list(source.column_names), len(source), read_column, class_names=class_names)
        return table_to_data(table, columns, kind)


def _is_vector(feature: Any) -> bool:
    """A feature of flat numbers per row (``Sequence(Value("float32"))``, ``List``, ``Array``-less): embeddings."""
    inner = getattr(feature, "feature", None)
    dtype = getattr(inner, "dtype", "")
    return inner is not None and not hasattr(inner, "feature") and ("float" in dtype or "int" in dtype)


def _pick_split(source: Any) -> str:
    if DEFAULT_SPLIT in source or len(source) == 1:
        return DEFAULT_SPLIT if DEFAULT_SPLIT in source else next(iter(source))
    raise DataError(
        f"the DatasetDict has splits {', '.join(source)} and no {DEFAULT_SPLIT!r} split: pick one, e.g. "
        f"load_data(dataset_dict[{next(iter(source))!r}])"
    )


register_format(HFDatasetFormat())

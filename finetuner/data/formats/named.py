"""The data sets that ship with finetuner, by name: ``"fashion-mnist"`` and ``"fortunes"``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.data.formats.base import DataFormat, DataKind, register_format
from finetuner.data.formats.csv_file import CsvFormat
from finetuner.data.records import LabeledData

FASHION_MNIST_NAMES = ("fashion-mnist", "fashion-mnist:train", "fashion-mnist:test")
FORTUNES_CSV = Path(__file__).parent.parent / "assets" / "text_fortunes.csv"


class NamedFormat(DataFormat):
    """``"fashion-mnist"`` (train split) or ``"fashion-mnist:test"``: the embedded 10-class image subset (2,000 /
    1,000 images); ``"fortunes"``: 888 quotes in 6 categories (``text,label``).

    Example:
        >>> NamedFormat().read("fortunes", {}, DataKind.AUTO).classes
        ['computers', 'education', 'food', 'literature', 'love', 'science']
    """

    name = "named"
    priority = 10
    description = "'fashion-mnist', 'fashion-mnist:test' or 'fortunes'"

    def can_read(self, source: Any) -> bool:
        return isinstance(source, str) and source.lower() in (*FASHION_MNIST_NAMES, "fortunes")

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData:
        if source.lower() == "fortunes":
            return CsvFormat().read(FORTUNES_CSV, {}, DataKind.LABELED)
        from finetuner.data.fashion_mnist import load_fashion_mnist

        return load_fashion_mnist(source.lower().partition(":")[2] or "train")


register_format(NamedFormat())

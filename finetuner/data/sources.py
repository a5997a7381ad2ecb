"""Data sources: labelled items and query/document pairs, from folders, CSVs, lists, Datasets or the embedded set."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from finetuner.data.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
KINDS = ("auto", "labeled", "pairs")
FASHION_MNIST_NAMES = ("fashion-mnist", "fashion-mnist:train", "fashion-mnist:test")
_CSV_COLUMNS = "path,label | image,label | text,label | query,document[,score] | query,document,negative"
_FOLDER_LAYOUT = "expected one subfolder per class, e.g. data/cat/1.jpg, data/dog/2.jpg"


class DatasetItems(Sequence):
    """The items of a ``torch.utils.data.Dataset`` returning ``(item, label)``, read lazily.

    ``items[i]`` calls ``dataset[indices[i]]``, so the Dataset's own loading runs where the item is
    used: in DataLoader workers.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int] | None = None):
        self.dataset = dataset
        self.indices = range(len(dataset)) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]][0]

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def subset(self, indices: Sequence[int]) -> DatasetItems:
        return DatasetItems(self.dataset, [self.indices[i] for i in indices])


def _take(items: Sequence, indices: Sequence[int]) -> Sequence:
    return items.subset(indices) if isinstance(items, DatasetItems) else [items[i] for i in indices]


@dataclass(repr=False)
class LabeledData:
    """Items with integer class labels, for classification and metric learning.

    Args:
        items: image paths, PIL images, uint8 arrays, tensors or texts (anything a preprocessing loads).
        labels: one class index per item, in ``range(len(classes))``.
        classes: class names; ``classes[label]`` names an item's class.

    Example:
        >>> data = LabeledData(["a.jpg", "b.jpg", "c.jpg"], [0, 1, 1], ["cat", "dog"])
        >>> len(data), data.subset([1, 2]).labels
        (3, [1, 1])
    """

    items: Sequence
    labels: list[int]
    classes: list[str]

    def __post_init__(self) -> None:
        self.labels = [int(label) for label in self.labels]
        self.classes = [str(name) for name in self.classes]
        if len(self.items) != len(self.labels):
            raise DataError(f"got {len(self.items)} items but {len(self.labels)} labels: give one label per item")
        if self.labels and not 0 <= min(self.labels) <= max(self.labels) < len(self.classes):
            raise DataError(
                f"labels must be in range({len(self.classes)}) for {len(self.classes)} classes, "
                f"got values from {min(self.labels)} to {max(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        shown = ", ".join(self.classes[:5]) + (", ..." if len(self.classes) > 5 else "")
        return f"LabeledData({len(self)} items, {len(self.classes)} classes: {shown})"

    def subset(self, indices: Sequence[int]) -> LabeledData:
        """The items at ``indices``, with the same class list.

        Example:
            >>> LabeledData(["a", "b"], [0, 1], ["x", "y"]).subset([1]).items
            ['b']
        """
        return LabeledData(_take(self.items, indices), [self.labels[i] for i in indices], list(self.classes))

    def split(self, fraction: float, seed: int = 0) -> tuple[LabeledData, LabeledData]:
        """Split into two stratified, seeded parts; the second holds about ``fraction`` of each class.

        Per-class shares are rounded so the second part holds ``round(fraction * len(self))`` items.

        Args:
            fraction: share of the items for the second part, in (0, 1).
            seed: the same seed gives the same split.

        Returns:
            ``(rest, part)``, each in the original item order.

        Example:
            >>> data = LabeledData(list(range(10)), [0] * 5 + [1] * 5, ["a", "b"])
            >>> train, val = data.split(0.2, seed=0)
            >>> len(train), sorted(val.labels)
            (8, [0, 1])
        """
        _check_fraction(fraction)
        rng = np.random.default_rng(seed)
        labels = np.asarray(self.labels, dtype=np.int64)
        per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(len(self.classes))]
        sizes = np.array([len(indices) for indices in per_class], dtype=np.float64)
        # Largest-remainder rounding: per-class quotas that add up to the overall target.
        quotas = np.floor(sizes * fraction).astype(np.int64)
        remainders = sizes * fraction - quotas + rng.random(len(sizes)) * 1e-9  # random tie-break
        missing = int(round(fraction * len(labels))) - int(quotas.sum())
        quotas[np.argsort(-remainders)[:missing]] += 1
        part = np.sort(np.concatenate([indices[:q] for indices, q in zip(per_class, quotas)] + [np.empty(0, int)]))
        rest = np.setdiff1d(np.arange(len(labels)), part)
        _check_parts(len(rest), len(part), len(labels), fraction)
        return self.subset(rest.tolist()), self.subset(part.tolist())

    def holdout(
        self, items_fraction: float = 0.2, classes_fraction: float = 0.0, seed: int = 0
    ) -> tuple[list[int], list[int], list[int]]:
        """Validation splits as indices: whole held-out classes, then a stratified share of the other classes' items.

        Args:
            items_fraction: share of the remaining classes' items held out (stratified, as `split`).
            classes_fraction: share of the classes held out whole (at least 2, so that retrieval among them means
                something, and at least 2 classes stay for training); 0 holds out no class.
            seed: the same seed gives the same splits.

        Returns:
            Sorted index lists ``(train, held-out items of the training classes, held-out classes)``, the last
            empty when ``classes_fraction`` is 0; ``data.subset(indices)`` gives each part.

        Example:
            >>> data = LabeledData(list(range(40)), [i % 4 for i in range(40)], ["a", "b", "c", "d"])
            >>> train, items, classes = data.holdout(0.2, 0.5, seed=0)
            >>> len(train), len(items), len(classes)
            (16, 4, 20)
        """
        present = sorted(set(self.labels))
        held: set[int] = set()
        if classes_fraction:
            _check_fraction(classes_fraction)
            count = max(2, round(classes_fraction * len(present)))
            if len(present) - count < 2:
                raise ValueError(
                    f"cannot hold out {count} of {len(present)} classes and keep 2 to train on: "
                    "use more classes or classes_fraction=0"
                )
            held = set(np.random.default_rng(seed).choice(present, size=count, replace=False).tolist())
        kept = [i for i, label in enumerate(self.labels) if label not in held]
        # split a copy whose items are the indices, so the parts come back as indices
        train, items = LabeledData(kept, [self.labels[i] for i in kept], self.classes).split(items_fraction, seed)
        unseen = [i for i, label in enumerate(self.labels) if label in held]
        return list(train.items), list(items.items), unseen


@dataclass(repr=False)
class PairData:
    """Queries with a relevant document each, optionally scored or with a hard negative (triplets), for
    in-batch-negative training.

    Args:
        queries: query items (texts, images, ...).
        documents: ``documents[i]`` is relevant to ``queries[i]``.
        scores: optional relevance score per pair.
        negatives: optional hard negative per pair: ``negatives[i]`` is not relevant to ``queries[i]``.

    Example:
        >>> pairs = PairData(["red shoe", "blue hat"], ["shoe.jpg", "hat.jpg"])
        >>> len(pairs), pairs.subset([1]).documents
        (2, ['hat.jpg'])
    """

    queries: list
    documents: list
    scores: list[float] | None = None
    negatives: list | None = None

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.documents):
            raise DataError(
                f"got {len(self.queries)} queries but {len(self.documents)} documents: give one document per query"
            )
        if self.scores is not None:
            self.scores = [float(score) for score in self.scores]
            if len(self.scores) != len(self.queries):
                raise DataError(f"got {len(self.scores)} scores for {len(self.queries)} pairs: give one score per pair")
        if self.negatives is not None and len(self.negatives) != len(self.queries):
            raise DataError(
                f"got {len(self.negatives)} negatives for {len(self.queries)} pairs: give one negative per pair"
            )

    def __len__(self) -> int:
        return len(self.queries)

    def __repr__(self) -> str:
        negatives = ", with hard negatives" if self.negatives is not None else ""
        return f"PairData({len(self)} pairs, {'with' if self.scores is not None else 'no'} scores{negatives})"

    def subset(self, indices: Sequence[int]) -> PairData:
        """The pairs at ``indices``.

        Example:
            >>> PairData(["q1", "q2"], ["d1", "d2"], [1.0, 0.5]).subset([1]).scores
            [0.5]
        """
        scores = None if self.scores is None else [self.scores[i] for i in indices]
        negatives = None if self.negatives is None else [self.negatives[i] for i in indices]
        return PairData([self.queries[i] for i in indices], [self.documents[i] for i in indices], scores, negatives)

    def split(self, fraction: float, seed: int = 0) -> tuple[PairData, PairData]:
        """Split at random (seeded) into two parts; the second holds ``round(fraction * len(self))`` pairs.

        Example:
            >>> train, val = PairData([f"q{i}" for i in range(10)], [f"d{i}" for i in range(10)]).split(0.3)
            >>> len(train), len(val)
            (7, 3)
        """
        _check_fraction(fraction)
        order = np.random.default_rng(seed).permutation(len(self))
        size = int(round(fraction * len(self)))
        _check_parts(len(self) - size, size, len(self), fraction)
        return self.subset(np.sort(order[size:]).tolist()), self.subset(np.sort(order[:size]).tolist())


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")


def _check_parts(rest: int, part: int, total: int, fraction: float) -> None:
    if rest == 0 or part == 0:
        raise DataError(
            f"cannot split {total} items with fraction={fraction}: one part would be empty; "
            "use more data or a fraction closer to 0.5"
        )


def check_labels_for_pair_loss(data: LabeledData) -> None:
    """Raise a ``DataError`` unless ``data`` has at least 2 classes, as metric-learning losses need.

    Example:
        >>> check_labels_for_pair_loss(LabeledData(["a", "b"], [0, 0], ["cat"]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        finetuner.data.errors.DataError: metric learning needs at least 2 classes ...
    """
    present = sorted(set(data.labels))
    if len(present) < 2:
        found = f"only class {data.classes[present[0]]!r}" if present else "no labelled items"
        raise DataError(
            f"metric learning needs at least 2 classes to form negative pairs, found {found}; "
            "add items of other classes. A single class cannot be classified either: "
            "for one class vs the rest, add a second class holding the 'other' items."
        )


def encode_labels(raw_labels: Sequence[Any], names: Sequence[str] | None = None) -> tuple[list[int], list[str]]:
    """Map raw labels (strings or ints) to ``0..K-1``, ordering classes by sorted value.

    Strings that all look like integers sort numerically ("2" before "10").

    Args:
        raw_labels: one label per item.
        names: for int labels, ``names[label]`` is the class name (e.g. a torchvision ``dataset.classes``).

    Returns:
        ``(labels, classes)``.

    Example:
        >>> encode_labels(["dog", "cat", "dog"])
        ([1, 0, 1], ['cat', 'dog'])
    """
    values = [_plain_label(label) for label in raw_labels]
    kinds = {type(value) for value in values}
    if len(kinds) > 1:
        raise DataError("labels mix strings and numbers: use one type, e.g. all class names")
    if kinds == {str} and all(value.lstrip("-").isdigit() for value in values):
        unique = sorted(set(values), key=int)
    else:
        unique = sorted(set(values))
    index = {value: i for i, value in enumerate(unique)}
    named = names is not None and kinds == {int} and all(0 <= v < len(names) for v in unique)
    classes = [str(names[v]) if named else str(v) for v in unique]
    return [index[value] for value in values], classes


def _plain_label(label: Any) -> int | str:
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, str) and label.strip():
        return label.strip()
    if isinstance(label, int) and not isinstance(label, bool):
        return label
    raise DataError(f"invalid label {label!r}: labels must be class names (non-empty strings) or integers")


def load_data(source: Any, *, kind: str = "auto") -> LabeledData | PairData:
    """Load training or evaluation data from any supported source.

    Args:
        source: one of
            - a folder with one subfolder per class (image files, sorted; class names = subfolder names);
            - a CSV with a header: ``path,label`` or ``image,label`` (paths relative to the CSV's folder),
              ``text,label``, ``query,document[,score]`` (pairs) or ``query,document,negative`` (triplets);
            - a list of ``(item, label)`` tuples; labels are class names or ints;
            - a list of ``(query, document)`` string pairs;
            - a ``torch.utils.data.Dataset`` returning ``(item, label)``; items are read lazily through it,
              labels come from its ``targets``/``labels`` attribute when present, else from one pass over it;
            - ``"fashion-mnist"`` (train split) or ``"fashion-mnist:test"``: the embedded 10-class subset;
            - ``"fortunes"``: the embedded text set, 888 quotes in 6 categories (``text,label``);
            - a ``LabeledData`` or ``PairData``, returned as is.
        kind: ``"labeled"`` or ``"pairs"`` to force the interpretation; ``"auto"`` decides from the source.
            A list of ``(str, str)`` tuples is labelled data when its first entries are image paths or its
            second entries repeat (class names repeat), pairs otherwise.

    Returns:
        ``LabeledData`` or ``PairData``.

    Raises:
        DataError: unknown path, no items, unreadable CSV, missing columns or invalid labels.

    Example:
        >>> data = load_data("fashion-mnist")
        >>> len(data), data.classes[:2]
        (2000, ['T-shirt/top', 'Trouser'])
        >>> load_data([("how do I reset it?", "Hold the button for 5 s."), ("price?", "It costs 10 EUR.")])
        PairData(2 pairs, no scores)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(source, (LabeledData, PairData)):
        data = source
    elif isinstance(source, str) and source.lower() in FASHION_MNIST_NAMES:
        from finetuner.data.fashion_mnist import load_fashion_mnist

        data = load_fashion_mnist(source.partition(":")[2] or "train")
    elif isinstance(source, str) and source.lower() == "fortunes":
        data = _load_path(Path(__file__).parent / "assets" / "text_fortunes.csv")
    elif isinstance(source, (str, os.PathLike)):
        data = _load_path(Path(source))
    elif isinstance(source, Dataset) and not isinstance(source, IterableDataset):
        data = _load_dataset(source)
    elif isinstance(source, (list, tuple)):
        data = _load_list(source, kind)
    else:
        raise DataError(
            f"cannot load data from a {type(source).__name__}: expected a folder, a CSV file, a list "
            "of (item, label) or (query, document) tuples, a map-style torch Dataset, or 'fashion-mnist'"
        )
    expected = {"labeled": LabeledData, "pairs": PairData}.get(kind)
    if expected is not None and not isinstance(data, expected):
        raise DataError(f"kind={kind!r} was asked for but {source!r:.80} holds {type(data).__name__}")
    return data


def _load_path(path: Path) -> LabeledData | PairData:
    if path.is_dir():
        return _load_folder(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _load_csv(path)
    if path.is_file():
        raise DataError(f"cannot load data from {path}: expected a folder ({_FOLDER_LAYOUT}) or a .csv file")
    raise DataError(f"no such file or folder: {path}")


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _walk_files(folder: Path) -> list[str]:
    """Every non-hidden file under ``folder``, sorted (os.walk: no stat call per file)."""
    files = []
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        files += [os.path.join(parent, name) for name in names if not name.startswith(".")]
    return sorted(files)


def _load_folder(root: Path) -> LabeledData:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in root.iterdir() if _is_image_file(p)]
    items, names, empty, skipped = [], [], [], []
    for class_dir in class_dirs:
        files = _walk_files(class_dir)
        images = [f for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
        skipped += [f for f in files if os.path.splitext(f)[1].lower() not in IMAGE_EXTENSIONS]
        if images:
            items.append(images)
            names.append(class_dir.name)
        else:
            empty.append(class_dir.name)
    if not names:
        found = f"; found {len(loose)} images directly in it, move them into class subfolders" if loose else ""
        raise DataError(f"no images found in {root}: {_FOLDER_LAYOUT} ({', '.join(IMAGE_EXTENSIONS)}){found}")
    notes = []
    if loose:
        notes.append(
            f"ignored {len(loose)} images directly in {root} (e.g. {loose[0]}): images belong in class subfolders"
        )
    if empty:
        notes.append(f"skipped {len(empty)} class folders without images: {', '.join(empty[:5])}")
    if skipped:
        notes.append(f"ignored {len(skipped)} files that are not images by extension (e.g. {skipped[0]})")
    if notes:
        warnings.warn(f"loading {root}: " + "; ".join(notes), stacklevel=4)
    labels = [label for label, images in enumerate(items) for _ in images]
    return LabeledData([path for images in items for path in images], labels, names)


def _load_csv(path: Path) -> LabeledData | PairData:
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            columns = [name.strip().lower() for name in next(reader, [])]
            rows = [[value.strip() for value in row] for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read CSV {path}: {error}; save it as UTF-8 CSV with a header row") from error
    if "query" in columns and "document" in columns:
        wanted = ["query", "document"] + [name for name in ("score", "negative") if name in columns]
    else:
        item_column = next((name for name in ("path", "image", "text") if name in columns), None)
        if item_column is None or "label" not in columns:
            raise DataError(f"{path} has columns {columns}; accepted headers are {_CSV_COLUMNS}")
        wanted = [item_column, "label"]
    positions = [columns.index(name) for name in wanted]
    records = []
    for line, row in enumerate(rows, start=2):
        if not any(row):
            continue
        values = [row[i] if i < len(row) else "" for i in positions]
        if not all(values[:2]):
            raise DataError(f"{path}, line {line}: empty {wanted[values.index('')]!r}; fill it in or remove the row")
        records.append(values)
    if not records:
        raise DataError(f"{path} has a header but no rows: add one row per item ({', '.join(wanted)})")
    if wanted[0] == "query":
        return _csv_pairs(path, records, wanted)
    items = [record[0] for record in records]
    if wanted[0] in ("path", "image"):
        items = [str(path.parent / item) if not os.path.isabs(item) else item for item in items]
        missing = [item for item in items if not os.path.isfile(item)]
        if missing:
            raise DataError(
                f"{path}: {len(missing)} image files not found, e.g. {missing[0]}; paths are relative "
                "to the CSV's folder: fix the paths or remove those rows"
            )
    labels, classes = encode_labels([record[1] for record in records])
    return LabeledData(items, labels, classes)


def _csv_pairs(path: Path, records: list[list[str]], columns: list[str]) -> PairData:
    scores = negatives = None
    if "score" in columns:
        try:
            scores = [float(record[columns.index("score")]) for record in records]
        except ValueError as error:
            raise DataError(f"{path}: every score must be a number ({error}); fix or drop the score column") from None
    if "negative" in columns:
        negatives = [record[columns.index("negative")] for record in records]
    return PairData([record[0] for record in records], [record[1] for record in records], scores, negatives)


def _load_list(source: Sequence, kind: str) -> LabeledData | PairData:
    if not source:
        raise DataError("the data list is empty: give a list of (item, label) or (query, document) tuples")
    if all(isinstance(entry, (tuple, list)) and len(entry) == 3 for entry in source):
        queries, documents, negatives = (list(column) for column in zip(*source))
        return PairData(queries, documents, negatives=negatives)
    if not all(isinstance(entry, (tuple, list)) and len(entry) == 2 for entry in source):
        raise DataError(
            "every list entry must be an (item, label) or (query, document) tuple of 2 values, "
            "or a (query, document, negative) triplet"
        )
    firsts, seconds = [entry[0] for entry in source], [entry[1] for entry in source]
    if kind == "pairs" or (kind == "auto" and _looks_like_pairs(firsts, seconds)):
        return PairData(firsts, seconds)
    labels, classes = encode_labels(seconds)
    return LabeledData(firsts, labels, classes)


def _looks_like_pairs(firsts: list, seconds: list) -> bool:
    if not all(isinstance(value, str) for value in firsts + seconds):
        return False
    if any(Path(value).suffix.lower() in IMAGE_EXTENSIONS for value in firsts[:100]):
        return False
    return len(set(seconds)) == len(seconds)


def _load_dataset(dataset: Dataset) -> LabeledData:
    if len(dataset) == 0:
        raise DataError(f"the {type(dataset).__name__} is empty")
    first = dataset[0]
    if not (isinstance(first, (tuple, list)) and len(first) == 2):
        raise DataError(f"a {type(dataset).__name__} must return (item, label) tuples, got {type(first).__name__}")
    raw = getattr(dataset, "targets", None)
    if raw is None:
        raw = getattr(dataset, "labels", None)
    if raw is None or len(raw) != len(dataset):
        raw = [dataset[i][1] for i in range(len(dataset))]
    raw = raw.tolist() if hasattr(raw, "tolist") else list(raw)
    labels, classes = encode_labels(raw, names=getattr(dataset, "classes", None))
    return LabeledData(DatasetItems(dataset), labels, classes)

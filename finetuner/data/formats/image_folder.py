"""An image folder: one subfolder per class, images anywhere below it (torchvision's ``ImageFolder`` layout)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats.base import IMAGE_EXTENSIONS, DataFormat, DataKind, register_format
from finetuner.data.records import LabeledData

LAYOUT = "expected one subfolder per class, e.g. data/cat/1.jpg, data/dog/2.jpg"


class ImageFolderFormat(DataFormat):
    """``root/<class>/**/<image>``: items are the image paths (sorted), classes the subfolder names.

    Example:
        >>> ImageFolderFormat().read("data/pets", {}, DataKind.AUTO)  # doctest: +SKIP
        LabeledData(120 items, 2 classes: cat, dog)
    """

    name = "image_folder"
    priority = 20
    description = f"a folder of images ({LAYOUT})"

    def can_read(self, source: Any) -> bool:
        return isinstance(source, (str, os.PathLike)) and Path(source).is_dir()

    def read(self, source: Any, columns: Mapping[str, str], kind: DataKind) -> LabeledData:
        root = Path(source)
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
            raise DataError(f"no images found in {root}: {LAYOUT} ({', '.join(IMAGE_EXTENSIONS)}){found}")
        notes = []
        if loose:
            notes.append(
                f"ignored {len(loose)} images directly in {root} (e.g. {loose[0]}): images belong in class subfolders"
            )
        if empty:
            notes.append(f"skipped {len(empty)} class folders without images: {', '.join(empty[:5])}")
        if skipped:
            notes.append(f"ignored {len(skipped)} files that are not images by extension (e.g. {skipped[0]})")
        if notes:  # stacklevel 3: read <- load_data <- the caller
            warnings.warn(f"loading {root}: " + "; ".join(notes), stacklevel=3)
        labels = [label for label, images in enumerate(items) for _ in images]
        return LabeledData([path for images in items for path in images], labels, names)


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _walk_files(folder: Path) -> list[str]:
    """Every non-hidden file under ``folder``, sorted (os.walk: no stat call per file)."""
    files = []
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        files += [os.path.join(parent, name) for name in names if not name.startswith(".")]
    return sorted(files)


register_format(ImageFolderFormat())

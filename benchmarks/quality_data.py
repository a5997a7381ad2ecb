"""Data sets and splits of the quality benchmark (`benchmarks/quality.py`): every set installs offline.

- ``fashion-mnist``: finetuner's embedded subset (3,000 images, 10 classes; MIT).
- ``digits``: scikit-learn's bundled ``load_digits`` (1,797 8x8 images, 10 classes; the UCI optdigits set, CC BY 4.0,
  shipped in scikit-learn, BSD-3).
- ``fortunes``: finetuner's embedded text set (888 quotes, 6 categories; Debian fortune-mod data).
- ``glyphs``: the 26 lowercase letters rendered from every TrueType font of the Debian packages
  ``fonts-dejavu-core`` / ``fonts-dejavu-extra`` (Bitstream Vera licence) and ``fonts-liberation``
  (SIL OFL 1.1) installed on the machine, one 64x64 image per (letter, font), with a seeded small jitter: class =
  letter, items = fonts.
- ``debian-packages``: Debian packages' one-line descriptions (bookworm main, from the machine's apt lists, written by
  the packages' maintainers under their packages' DFSG-free licences): 150 packages of each of 8 sections;
  class = section.

Splits: *same-class* (train on a class-balanced part of the items, test on the other items of the same classes)
and *class-disjoint* (train on half the classes, test on every item of the other half). Recipe settings are chosen
on a *validation carve* of the training part only: held-out items of the kept classes and wholly held-out classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class BenchData:
    """One data set: raw items (images as uint8 arrays, or strings), integer labels, class names."""

    name: str
    kind: str  # "image" or "text"
    items: list
    labels: np.ndarray
    classes: list[str]
    source: str
    test_mask: np.ndarray | None = field(default=None, repr=False)  # a fixed test part of the items, if shipped


def fashion_mnist() -> BenchData:
    from finetuner.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    items = list(train.items) + list(test.items)
    labels = np.array(list(train.labels) + list(test.labels))
    mask = np.r_[np.zeros(len(train), bool), np.ones(len(test), bool)]
    source = "finetuner's embedded Fashion-MNIST subset (Zalando, MIT): 2,000 train + 1,000 test images"
    return BenchData("fashion-mnist", "image", items, labels, list(train.classes), source, mask)


def digits() -> BenchData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * (255 / 16)).round().astype(np.uint8)  # 0..16 grey levels -> 0..255
    source = "scikit-learn's bundled load_digits (UCI optdigits, CC BY 4.0; scikit-learn BSD-3): 1,797 8x8 images"
    return BenchData("digits", "image", list(images), bunch.target.astype(int), [str(d) for d in range(10)], source)


def fortunes() -> BenchData:
    from finetuner.data import load_data

    data = load_data("fortunes")
    source = "finetuner's embedded fortunes (Debian fortune-mod data files): 888 quotes, 6 categories"
    return BenchData("fortunes", "text", list(data.items), np.asarray(data.labels), list(data.classes), source)


FONT_FOLDERS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def glyphs(size: int = 64) -> BenchData:
    """Letters rendered from the installed Debian font packages: one image per (letter, font)."""
    from pathlib import Path

    from PIL import Image, ImageDraw, ImageFont

    fonts = sorted(str(p) for folder in FONT_FOLDERS for p in Path(folder).glob("*.ttf"))
    if not fonts:
        raise FileNotFoundError(f"No fonts under {FONT_FOLDERS}: apt-get install fonts-dejavu fonts-liberation.")
    rng = np.random.default_rng(0)
    items, labels = [], []
    for path in fonts:
        for label, letter in enumerate(LETTERS):
            font = ImageFont.truetype(path, int(size * rng.uniform(0.55, 0.75)))
            image = Image.new("L", (size, size), 0)
            draw = ImageDraw.Draw(image)
            left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
            x = (size - (right - left)) / 2 - left + rng.uniform(-4, 4)
            y = (size - (bottom - top)) / 2 - top + rng.uniform(-4, 4)
            draw.text((x, y), letter, fill=255, font=font)
            image = image.rotate(rng.uniform(-10, 10), fillcolor=0)
            items.append(np.asarray(image, dtype=np.uint8))
            labels.append(label)
    source = f"{len(LETTERS)} letters x {len(fonts)} fonts of fonts-dejavu (Bitstream Vera) and fonts-liberation (OFL)"
    return BenchData("glyphs", "image", items, np.asarray(labels), list(LETTERS), source)


APT_LISTS = "/var/lib/apt/lists"
SECTIONS = ("admin", "fonts", "games", "graphics", "math", "net", "science", "sound")


def debian_packages(per_section: int = 150) -> BenchData:
    """Package descriptions of the machine's Debian apt lists (``apt-get update`` fills them), class = section."""
    import subprocess
    from pathlib import Path

    lists = sorted(Path(APT_LISTS).glob("*main_binary-*_Packages*"))
    if not lists:
        raise FileNotFoundError(f"No Packages index under {APT_LISTS}: run apt-get update once.")
    path = lists[0]
    reader = {".lz4": ["lz4cat"], ".gz": ["zcat"], ".xz": ["xzcat"]}.get(path.suffix, ["cat"])
    text = subprocess.run([*reader, str(path)], check=True, capture_output=True, text=True).stdout
    by_section: dict[str, list[str]] = {section: [] for section in SECTIONS}
    for block in text.split("\n\n"):
        fields, description, key = {}, [], None
        for line in block.splitlines():
            if line.startswith(" "):
                if key == "Description":  # a long description, where the index has one
                    description.append(line.strip().replace(" .", "").strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        section = fields.get("Section", "").split("/")[-1]
        if section in by_section and "Description" in fields:
            by_section[section].append(" ".join([fields["Description"], *description])[:400])
    rng = np.random.default_rng(0)
    items, labels = [], []
    for label, section in enumerate(SECTIONS):
        texts = sorted(set(by_section[section]))
        for i in np.sort(rng.permutation(len(texts))[:per_section]):
            items.append(texts[i])
            labels.append(label)
    source = f"Debian bookworm main package descriptions ({path.name}), {per_section} of each of {len(SECTIONS)}"
    return BenchData("debian-packages", "text", items, np.asarray(labels), list(SECTIONS), source)


DATASETS = {
    "fashion-mnist": fashion_mnist,
    "digits": digits,
    "fortunes": fortunes,
    "glyphs": glyphs,
    "debian-packages": debian_packages,
}


def stratified(indices: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator):
    """``(rest, held)``: ``fraction`` of each class's indices held out (at least one, never all)."""
    held = []
    for label in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == label])
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        held.extend(members[:count])
    held = np.sort(np.array(held, dtype=int))
    return np.setdiff1d(indices, held), held


def same_class_split(data: BenchData, seed: int = 0, test_fraction: float = 0.4):
    """``(train, test)`` indices over the same classes: the shipped test part, else a stratified split."""
    everything = np.arange(len(data.labels))
    if data.test_mask is not None:
        return everything[~data.test_mask], everything[data.test_mask]
    return stratified(everything, data.labels, test_fraction, np.random.default_rng(seed))


def class_disjoint_split(data: BenchData, seed: int = 0):
    """``(train, test, seen classes)``: train on the same-class training items of a seeded half of the classes, test
    on every item of the other half."""
    train, _ = same_class_split(data, seed)
    order = np.random.default_rng(seed).permutation(len(data.classes))
    seen = np.sort(order[: len(order) // 2])
    return train[np.isin(data.labels[train], seen)], np.flatnonzero(~np.isin(data.labels, seen)), seen


def validation_carve(train: np.ndarray, labels: np.ndarray, seed: int = 0, item_fraction: float = 0.2):
    """``(fit, held-out items, held-out classes)`` indices from the training part only: a third of its classes
    (at least one) held out whole, and ``item_fraction`` of each remaining class's items."""
    rng = np.random.default_rng(seed + 1)
    classes = np.unique(labels[train])
    held_classes = rng.permutation(classes)[: max(1, round(len(classes) / 3))]
    unseen = train[np.isin(labels[train], held_classes)]
    fit, items = stratified(train[~np.isin(labels[train], held_classes)], labels, item_fraction, rng)
    return fit, items, unseen

"""Text preprocessing: validate strings, tokenize batches, and keep the tokenizer with the saved model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetuner.data.errors import DataError
from finetuner.data.formats.base import is_image_path
from finetuner.data.preprocessing.base import register_preprocessing

_SAMPLE = 64  # items looked at to tell what kind of data was given


@register_preprocessing("text")
class TextPreprocessing:
    """Strings in, token tensors out, with a Hugging Face tokenizer.

    ``load`` only checks the item (tokenizing one string at a time wastes the fast tokenizer's batching);
    ``collate`` tokenizes the whole batch, padded to its longest text and truncated to ``max_length``.

    Args:
        tokenizer: a folder with tokenizer files, or a Hugging Face tokenizer object.
        max_length: texts are truncated to this many tokens (special tokens included).

    Example:
        >>> prep = TextPreprocessing("path/to/all-MiniLM-L6-v2", max_length=128)  # doctest: +SKIP
        >>> batch = prep.collate([prep.load("a cat", train=True), prep.load("a dog sat", train=True)])  # doctest: +SKIP
        >>> sorted(batch)  # doctest: +SKIP
        ['attention_mask', 'input_ids', 'token_type_ids']
    """

    kind = "text"

    def __init__(self, tokenizer: str | os.PathLike | Any, max_length: int = 256) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be a positive number of tokens, got {max_length}")
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)

    def load(self, item: Any, train: bool) -> str:
        """Check that ``item`` is a string and return it (the same in training and evaluation).

        Raises:
            DataError: the item is not a string.

        Example:
            >>> prep.load("a sentence", train=False)  # doctest: +SKIP
            'a sentence'
        """
        if isinstance(item, np.str_):
            item = str(item)
        if not isinstance(item, str):
            raise DataError(
                f"a text model takes strings, got a {type(item).__name__} ({item!r:.60}): pass texts, or a CSV with "
                "a 'text' column (or 'query,document' columns for pairs)"
            )
        return item

    def check_items(self, items: Sequence[Any], what: str) -> None:
        """Refuse, before anything trains, data a text model would read wrongly: items that are not strings,
        empty or whitespace-only texts, and image files (an image folder given to a text model).

        Raises:
            DataError: naming ``what`` (``training data``), the first offending row and the fix.

        Example:
            >>> prep.check_items(["a cat", "  "], "training data")  # doctest: +SKIP
            Traceback (most recent call last):
            DataError: training data has 1 empty text (row 1): remove those rows or fill them in
        """
        texts = [str(item) if isinstance(item, np.str_) else item for item in items]
        wrong = next((i for i, item in enumerate(texts) if not isinstance(item, str)), None)
        if wrong is not None:
            self.load(texts[wrong], train=False)  # its message names the type and the fix
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if empty:
            rows = ", ".join(str(i) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
            raise DataError(
                f"{what} has {len(empty)} empty text{'s' if len(empty) > 1 else ''} (row {rows}): remove those "
                "rows or fill them in"
            )
        sample = texts[:_SAMPLE]
        images = [text for text in sample if is_image_path(text) and os.path.isfile(text)]
        if sample and len(images) * 2 > len(sample):
            raise DataError(
                f"{what} holds image files ({images[0]}, ...), but this is a text model: it would read the file "
                "names as texts. Use an image model (e.g. model='efficientnet_lite0'), or pass the texts themselves"
            )

    def collate(self, samples: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize a batch: ``input_ids``, ``attention_mask`` (and ``token_type_ids`` for BERT-like models).

        Example:
            >>> batch = prep.collate(["a cat", "a dog sat"])  # doctest: +SKIP
            >>> batch["input_ids"].shape  # doctest: +SKIP
            torch.Size([2, 5])
        """
        encoded = self.tokenizer(
            list(samples), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return dict(encoded)

    def to_config(self) -> dict:
        """A JSON-serialisable dict; the tokenizer itself is written by ``save(folder)``.

        Example:
            >>> prep.to_config()  # doctest: +SKIP
            {'kind': 'text', 'max_length': 128}
        """
        return {"kind": self.kind, "max_length": self.max_length}

    def save(self, folder: str | os.PathLike) -> None:
        """Write the tokenizer files into ``folder`` (the saved model's folder).

        Example:
            >>> prep.save("out/model")  # doctest: +SKIP
        """
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))

    @classmethod
    def from_config(cls, config: dict, folder: str | os.PathLike | None = None) -> TextPreprocessing:
        """Rebuild from ``to_config()`` output and the tokenizer files that ``save`` wrote in ``folder``.

        Example:
            >>> prep = TextPreprocessing.from_config({"kind": "text", "max_length": 128}, "out/model")  # doctest: +SKIP
        """
        if config.get("kind", "text") != "text":
            raise ValueError(f"not a text preprocessing config: kind={config.get('kind')!r}")
        if folder is None:
            raise ValueError("a text preprocessing needs the saved model folder: its tokenizer files live there")
        return cls(folder, max_length=config.get("max_length", 256))

    def __repr__(self) -> str:
        return f"TextPreprocessing({type(self.tokenizer).__name__}, max_length={self.max_length})"


def load_tokenizer(folder: str | os.PathLike) -> Any:
    """The Hugging Face tokenizer saved in ``folder``, read from disk only.

    Example:
        >>> tokenizer = load_tokenizer("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
    """
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder {folder} does not exist")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(
            f"no tokenizer files in {folder} ({error}): it needs tokenizer.json or vocab.txt and "
            "tokenizer_config.json, as written by tokenizer.save_pretrained(folder)"
        ) from error


def sort_by_length(texts: list[str]) -> np.ndarray:
    """The order that sorts ``texts`` longest first, so batches of similar lengths need little padding.

    Encode ``[texts[i] for i in order]``, then put results back with ``out[order] = encoded``.

    Example:
        >>> order = sort_by_length(["a", "a b c", "a b"])
        >>> order.tolist()
        [1, 2, 0]
        >>> encoded = np.array([3, 2, 1])  # results in sorted order
        >>> out = np.empty_like(encoded); out[order] = encoded; out.tolist()
        [1, 3, 2]
    """
    return np.argsort([-len(text) for text in texts], kind="stable")

"""`load_data`: the one front door from data as people hold it to ``LabeledData`` or ``PairData``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finetuner.data.errors import DataError
from finetuner.data.formats import DataKind, check_kind, describe_source, find_format
from finetuner.data.records import LabeledData, PairData


def load_data(
    source: Any, *, kind: DataKind | str = "auto", columns: Mapping[str, str] | None = None
) -> LabeledData | PairData:
    """Load training or evaluation data from any supported source.

    Args:
        source: one of
            - a folder with one subfolder per class (image files, sorted; class names = subfolder names);
            - a ``.csv`` (header row), ``.jsonl`` or ``.parquet`` file, a pandas ``DataFrame``, a list of dicts,
              or a ``datasets.Dataset`` / ``DatasetDict`` (its ``"train"`` split): a table whose columns are
              named by ``columns`` or by the default names below; image paths in a file are relative to its folder;
            - a list of ``(item, label)``, ``(query, document)``, ``(query, document, score)`` or
              ``(query, document, negative)`` tuples; labels are class names or ints;
            - a map-style ``torch.utils.data.Dataset`` returning ``(item, label)``; items are read lazily
              through it, labels come from its ``targets``/``labels`` attribute when present;
            - ``"fashion-mnist"`` (train split) or ``"fashion-mnist:test"``: the embedded 10-class subset;
            - ``"fortunes"``: the embedded text set, 888 quotes in 6 categories;
            - a ``LabeledData`` or ``PairData``, returned as is;
            - anything a format added with ``finetuner.data.register_format`` reads.
        kind: what the data must be: ``"labeled"`` (items with class labels), ``"pairs"`` (query/document,
            scores and hard negatives kept when present), ``"scored_pairs"`` (a score per pair) or
            ``"triplets"`` (a hard negative per pair); ``"auto"`` infers it, and raises when that is ambiguous.
        columns: for tables, the column of each role: ``{"image": "path", "label": "category"}``,
            ``{"text": "sentence", "label": "y"}``, ``{"query": "q", "document": "pos", "negative": "neg"}``
            or ``{"query": ..., "document": ..., "score": ...}`` (keys: image, path, text, item, label, query,
            anchor, document, positive, negative, score). Roles left out are found by their default names:
            item ``image``/``path``/``text``/``item``/``sentence``, ``label``, query ``query``/``anchor``/
            ``sentence1``, document ``document``/``positive``/``sentence2``, ``negative``, ``score``
            (sentence-transformers' column names work unmapped). Mapping roles also sets the kind.

    Returns:
        ``LabeledData`` or ``PairData``.

    Raises:
        DataError: unknown path or type, no rows, a missing column (the message lists the available ones),
            invalid labels, or data that is ambiguous or not of the requested ``kind``.
        ValueError: an unknown ``kind`` or ``columns`` key.

    Example:
        >>> data = load_data("fashion-mnist")
        >>> len(data), data.classes[:2]
        (2000, ['T-shirt/top', 'Trouser'])
        >>> load_data([("how do I reset it?", "Hold the button for 5 s."), ("price?", "It costs 10 EUR.")])
        PairData(2 pairs, no scores)
        >>> rows = [{"q": "red shoe", "pos": "a red sneaker", "neg": "a blue hat"}]
        >>> load_data(rows, columns={"query": "q", "document": "pos", "negative": "neg"})
        PairData(1 pairs, no scores, with hard negatives)
    """
    kind = DataKind.parse(kind)
    columns = dict(columns or {})
    if isinstance(source, (LabeledData, PairData)):
        data = source
    else:
        data_format = find_format(source)
        if columns and not data_format.tabular:
            raise DataError(
                f"columns= applies to tables (CSV, JSONL, Parquet, DataFrame, dicts, datasets), not to "
                f"{data_format.description}: leave it out"
            )
        data = data_format.read(source, columns, kind)
    check_kind(data, kind, describe_source(source))
    return data

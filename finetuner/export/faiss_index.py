"""``faiss``: a linear adapter on given vectors as a faiss index whose pre-transform is the adapter, so raw vectors
go in and the adapter's space comes out, in any faiss program."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuner.core.files import atomic_folder
from finetuner.export.arrays import linear_map
from finetuner.export.registry import register_exporter

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel

INDEX_FILE, QUERY_TRANSFORM_FILE, INFO_FILE = "index.faiss", "query_transform.faiss", "faiss.json"


def linear_transform(weight: np.ndarray, bias: np.ndarray) -> Any:
    """A ``faiss.LinearTransform`` computing ``x @ weight.T + bias``.

    Example:
        >>> transform = linear_transform(np.eye(4, dtype="float32"), np.zeros(4, "float32"))
        >>> transform.d_in, transform.d_out
        (4, 4)
    """
    import faiss

    transform = faiss.LinearTransform(int(weight.shape[1]), int(weight.shape[0]), True)
    faiss.copy_array_to_vector(np.ascontiguousarray(weight, dtype=np.float32).ravel(), transform.A)
    faiss.copy_array_to_vector(np.ascontiguousarray(bias, dtype=np.float32), transform.b)
    transform.is_trained = True
    return transform


@register_exporter("faiss")
def export_faiss(model: EmbeddingModel, path: Path, **options: Any) -> Path:
    """A folder with ``index.faiss``: an empty exact inner-product index (``IndexFlatIP``) behind a pre-transform
    chain, so you add and search the vectors you already have. Labelled-vector adapters (``adapter="both"``): the
    chain is the adapter then L2 normalisation, for documents and queries alike. Query-side adapters: the index
    only normalises (documents stay as they are, so an index you have stays valid) and ``query_transform.faiss``
    (a ``LinearTransform``) maps the queries: apply it, normalise, search. ``faiss.json`` says which. ``options``
    go to `finetuner.export.arrays.linear_map` (``atol``); the adapter must be linear (``head="linear"``).

    Example:
        >>> model.export("out/adapter-faiss", format="faiss")  # doctest: +SKIP
        >>> index = faiss.read_index("out/adapter-faiss/index.faiss")  # doctest: +SKIP
        >>> index.add(documents); scores, ids = index.search(queries, 10)  # doctest: +SKIP
    """
    import faiss

    weight, bias = linear_map(model, **options)
    query_side = model.spec.get("adapter") == "query"
    width = int(weight.shape[1]) if query_side else int(weight.shape[0])
    index = faiss.IndexPreTransform(faiss.IndexFlatIP(width))
    index.prepend_transform(faiss.NormalizationTransform(width, 2.0))
    if not query_side:
        index.prepend_transform(linear_transform(weight, bias))
    info = {
        "index": INDEX_FILE,
        "maps": "queries" if query_side else "queries and documents",
        "in_features": int(weight.shape[1]),
        "out_features": int(weight.shape[0]),
        "use": (
            "index.add(documents); q = query_transform.apply(queries); faiss.normalize_L2(q); index.search(q, k)"
            if query_side
            else "index.add(documents); index.search(queries, k)  (raw vectors in: the index applies the adapter)"
        ),
    }
    with atomic_folder(path) as staging:
        faiss.write_index(index, str(staging / INDEX_FILE))
        if query_side:
            info["query_transform"] = QUERY_TRANSFORM_FILE
            faiss.write_VectorTransform(linear_transform(weight, bias), str(staging / QUERY_TRANSFORM_FILE))
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path

"""``Index``: a faiss vector index with ids and JSON payloads, saved without pickle."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

METRICS = ("cosine", "dot", "euclidean")
KINDS = {
    "flat": {},
    "ivf": {"nlist": None, "nprobe": 8},
    "hnsw": {"M": 32, "efSearch": 64, "efConstruction": 40},
    "int8": {"rerank": 0},
    "binary": {"rerank": 10},
}
COMPRESSED = ("int8", "binary")  # kinds that also keep the float32 vectors, for re-scoring (memory-mapped on load)
FORMAT = "finetuner-index"
_FILES = {
    "config": "config.json",
    "faiss": "index.faiss",
    "ids": "ids.json",
    "payloads": "payloads.json",
    "vectors": "vectors.npy",
}


class Index:
    """A searchable set of embeddings, each with an int id and an optional JSON payload (e.g. a file path).

    Scores are "higher is better": ``cosine`` gives the cosine similarity (vectors are L2-normalised on
    ``add`` and ``search``), ``dot`` the inner product, ``euclidean`` the *negative squared* L2 distance.

    Kinds: ``"flat"`` is exact (the default). ``"ivf"`` (``IndexIVFFlat``; params ``nlist``, default
    ``min(4 sqrt(n), n / 39)`` of the first ``add``, and ``nprobe``, default 8) trains its coarse
    quantizer on the first ``add``. ``"hnsw"`` (``IndexHNSWFlat``; params ``M``, ``efSearch``,
    ``efConstruction``) needs no training. Approximate kinds can return fewer than k hits for a query:
    the missing slots hold id -1 and score -inf. Use :meth:`recall_against_exact` to measure them.

    Compact kinds search small codes and can re-score the best candidates with the float32 vectors: ``"int8"``
    (``IndexScalarQuantizer``, 8 bits per dimension, 4x smaller; trained on the first ``add``) and ``"binary"``
    (``IndexBinaryFlat`` on the signs, 1 bit per dimension, 32x smaller; Hamming distance). Param ``rerank``:
    the best ``k * rerank`` candidates by code are re-scored exactly (default 0, none, for ``"int8"``; 10 for
    ``"binary"``, whose Hamming scores are coarse; without re-scoring its scores are minus the Hamming distance).
    These kinds keep the float32 vectors beside the codes: in memory while building, and memory-mapped from
    ``vectors.npy`` after `load`, so only the codes live in RAM and re-scoring reads just the candidates' rows.

    Args:
        dim: the embedding size; None takes it from the first ``add``.
        metric: ``"cosine"``, ``"dot"`` or ``"euclidean"``.
        kind: ``"flat"``, ``"ivf"``, ``"hnsw"``, ``"int8"`` or ``"binary"``.
        **params: the kind's parameters listed above.

    Example:
        >>> import numpy as np
        >>> index = Index(metric="cosine")
        >>> index.add(np.eye(3, dtype=np.float32), payloads=["a.jpg", "b.jpg", "c.jpg"])
        >>> scores, ids = index.search(np.array([[0.9, 0.1, 0.0]], dtype=np.float32), k=2)
        >>> ids.tolist(), index.payloads_for(ids[0])
        ([[0, 1]], ['a.jpg', 'b.jpg'])
    """

    def __init__(self, dim: int | None = None, metric: str = "cosine", kind: str = "flat", **params: Any):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
        unknown = set(params) - set(KINDS[kind])
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)} for kind={kind!r}; it takes {sorted(KINDS[kind])}")
        if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
            raise ValueError(f"dim must be a positive int or None, got {dim!r}")
        self.metric, self.kind = metric, kind
        self.params = {**KINDS[kind], **params}
        rerank = self.params.get("rerank", 0)
        if not isinstance(rerank, (int, np.integer)) or rerank < 0:
            raise ValueError(f"rerank must be 0 (no re-scoring) or a positive int, got {rerank!r}")
        self.dim = None if dim is None else int(dim)
        self._faiss: faiss.Index | faiss.IndexBinary | None = None
        self._vectors_fp32: np.ndarray | None = None  # compressed kinds only: the exact vectors, for re-scoring
        self._ids = np.empty(0, dtype=np.int64)
        self._payloads: list[Any] = []
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None  # (sorted ids, their positions), built lazily

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"Index(dim={self.dim}, metric={self.metric!r}, kind={self.kind!r}, size={len(self)})"

    def add(
        self,
        embeddings: np.ndarray,
        ids: Sequence[int] | np.ndarray | None = None,
        payloads: Sequence[Any] | None = None,
    ) -> None:
        """Add ``(n, dim)`` embeddings, with ids (default: continuing ``len(self), len(self) + 1, ...``) and payloads.

        An untrained ``"ivf"`` index is trained on these embeddings first.

        Example:
            >>> index = Index(dim=2)
            >>> index.add(np.ones((2, 2), dtype=np.float32), ids=[10, 11], payloads=[{"path": "a"}, None])
            >>> len(index)
            2
        """
        x = self._vectors(embeddings, "embeddings")
        n = x.shape[0]
        new_ids = np.arange(len(self), len(self) + n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        if new_ids.shape != (n,):
            raise ValueError(f"ids must hold one int per embedding ({n}), got shape {new_ids.shape}")
        clash = np.intersect1d(new_ids, self._ids) if len(self) else np.empty(0)
        if len(np.unique(new_ids)) != n or clash.size:
            raise ValueError("ids must be unique and not already in the index; pass fresh ids explicitly")
        if payloads is not None:
            payloads = list(payloads)
            if len(payloads) != n:
                raise ValueError(f"payloads must hold one entry per embedding ({n}), got {len(payloads)}")
            try:
                json.dumps(payloads)
            except TypeError as err:
                raise ValueError(f"payloads must be JSON-serialisable (str paths, numbers, dicts): {err}") from None
        if self._faiss is None:
            self._faiss = self._build(x)
            self.dim = x.shape[1]
            self._apply_search_params()
        if self.kind == "binary":
            self._faiss.add(_binary_codes(x))
        else:
            self._faiss.add(x)
        if self.kind in COMPRESSED:
            stored = self._vectors_fp32
            self._vectors_fp32 = x.copy() if stored is None else np.concatenate([np.asarray(stored), x])
        self._ids = np.concatenate([self._ids, new_ids])
        self._payloads.extend(payloads if payloads is not None else [None] * n)
        self._lookup = None

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best matches of each query: ``(scores, ids)``, both ``(n_queries, k)``, best first.

        Example:
            >>> index = Index(); index.add(np.eye(2, dtype=np.float32))
            >>> index.search(np.array([[1.0, 0.0]], dtype=np.float32), k=1)[1].tolist()
            [[0]]
        """
        if len(self) == 0:
            raise ValueError("the index is empty; call add() before search()")
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self):
            raise ValueError(f"k must be an int in [1, {len(self)}] (the index size), got {k!r}; pass a smaller k")
        q = self._vectors(queries, "queries", allow_1d=True)
        scores, pos = self._search_positions(q, int(k))
        missing = pos < 0
        scores[missing] = -np.inf
        return scores, np.where(missing, -1, self._ids[np.maximum(pos, 0)])

    def _search_positions(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores (higher is better) and faiss positions of the ``k`` best matches, re-scored where asked."""
        rerank = int(self.params.get("rerank", 0))
        depth = min(len(self), k * rerank) if rerank > 0 else k
        if self.kind == "binary":
            distances, pos = self._faiss.search(_binary_codes(q), depth)
            scores = -distances.astype(np.float32)
        else:
            scores, pos = self._faiss.search(q, depth)
            if self.metric == "euclidean":
                scores = -scores
        if rerank < 1:
            return scores[:, :k], pos[:, :k]
        return self._rescore(q, pos, k)

    def _rescore(self, q: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of each query's candidates (rows of the float32 vectors), best ``k`` first; queries go in
        blocks so the gathered rows stay under about 64 MiB."""
        block = max(1, (1 << 24) // max(1, candidates.shape[1] * q.shape[1]))
        scores, ids = [], []
        for start in range(0, len(q), block):
            chunk = candidates[start : start + block]
            needed, lookup = np.unique(np.maximum(chunk, 0), return_inverse=True)
            vectors = np.asarray(self._vectors_fp32[needed])[lookup.reshape(chunk.shape)]  # (block, depth, dim)
            if self.metric == "euclidean":
                exact = -np.sum((vectors - q[start : start + block, None, :]) ** 2, axis=2)
            else:
                exact = np.einsum("qcd,qd->qc", vectors, q[start : start + block])
            exact[chunk < 0] = -np.inf
            order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            scores.append(np.take_along_axis(exact, order, 1).astype(np.float32))
            ids.append(np.take_along_axis(chunk, order, 1))
        return np.concatenate(scores), np.concatenate(ids)

    @property
    def nbytes(self) -> int:
        """Bytes this index holds in memory: the faiss structure (vectors or codes), plus the float32 vectors
        of the compact kinds unless they are memory-mapped (after `load`). Ids and payloads are not counted.

        Example:
            >>> index = Index(kind="binary"); index.add(np.random.rand(1000, 128).astype(np.float32))
            >>> index.nbytes >= 1000 * (16 + 512)  # codes + float32 vectors per vector, before save/load
            True
        """
        if self._faiss is None:
            return 0
        serialize = faiss.serialize_index_binary if self.kind == "binary" else faiss.serialize_index
        size = int(serialize(self._faiss).nbytes)
        if self._vectors_fp32 is not None and not isinstance(self._vectors_fp32, np.memmap):
            size += self._vectors_fp32.nbytes
        return size

    def payloads_for(self, ids: Sequence[int] | np.ndarray) -> list[Any]:
        """The payload of each id (None where none was given, and for the -1 of a missing hit).

        Example:
            >>> index = Index(); index.add(np.eye(2, dtype=np.float32), payloads=["a", "b"])
            >>> index.payloads_for([1, -1])
            ['b', None]
        """
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self._lookup is None:
            order = np.argsort(self._ids, kind="stable")
            self._lookup = (self._ids[order], order)
        sorted_ids, order = self._lookup
        at = np.searchsorted(sorted_ids, wanted).clip(max=max(len(self) - 1, 0))
        found = (sorted_ids[at] == wanted) if len(self) else np.zeros(len(wanted), bool)
        unknown = wanted[~found & (wanted != -1)]
        if unknown.size:
            raise ValueError(f"ids {unknown[:5].tolist()} are not in the index; use ids returned by search()")
        return [self._payloads[order[a]] if ok else None for a, ok in zip(at.tolist(), found.tolist())]

    def search_results(self, queries: np.ndarray, k: int = 10) -> list[list[dict[str, Any]]]:
        """`search` with payloads attached: one list of ``{"id", "score", "payload"}`` per query (at most
        ``len(self)`` results each).

        Example:
            >>> index.search_results(query_vectors, k=3)[0][0]["payload"]  # doctest: +SKIP
            'img_7.jpg'
        """
        scores, ids = self.search(queries, min(k, len(self)))
        results = []
        for row_scores, row_ids in zip(scores, ids):
            payloads = self.payloads_for(row_ids)
            results.append(
                [
                    {"id": int(i), "score": float(s), "payload": p}
                    for s, i, p in zip(row_scores, row_ids, payloads)
                    if i >= 0
                ]
            )
        return results

    def recall_against_exact(self, queries: np.ndarray, k: int = 10) -> float:
        """Recall@k of this index against exact search on the same vectors: the mean over queries of
        ``|approximate top k & exact top k| / k``. 1.0 for ``"flat"`` (up to ties). Reconstructs all
        stored vectors, so it needs ``len(self) x dim`` float32 memory.

        Example:
            >>> index = Index(kind="hnsw"); index.add(np.random.rand(200, 8).astype(np.float32))
            >>> index.recall_against_exact(np.random.rand(5, 8).astype(np.float32), k=5) > 0.9
            True
        """
        _, approx = self.search(queries, k)
        q = self._vectors(queries, "queries", allow_1d=True)
        if self.kind in COMPRESSED:
            stored = np.asarray(self._vectors_fp32)
        else:
            if self.kind == "ivf":
                self._faiss.make_direct_map()
            stored = np.asarray(self._faiss.reconstruct_n(0, len(self)))  # a tensor once faiss.contrib.torch_utils ran
        metric = faiss.METRIC_L2 if self.metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        exact = self._ids[faiss.knn(q, stored, int(k), metric=metric)[1]]
        return float(np.mean([len(np.intersect1d(a, e)) / k for a, e in zip(approx, exact)]))

    def save(self, folder: str | Path) -> None:
        """Write ``config.json``, ``index.faiss`` (``faiss.write_index``), ``ids.json`` and ``payloads.json``
        (and ``vectors.npy``, the float32 vectors, for the compact kinds).

        Example:
            >>> index.save("out/index")  # doctest: +SKIP
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"format": FORMAT, "version": 1, "dim": self.dim, "metric": self.metric, "kind": self.kind}
        config.update(params=self.params, size=len(self))
        if self._faiss is not None:
            write = faiss.write_index_binary if self.kind == "binary" else faiss.write_index
            write(self._faiss, str(folder / _FILES["faiss"]))
        if self._vectors_fp32 is not None:
            np.save(folder / _FILES["vectors"], np.asarray(self._vectors_fp32), allow_pickle=False)
        (folder / _FILES["ids"]).write_text(json.dumps(self._ids.tolist()))
        (folder / _FILES["payloads"]).write_text(json.dumps(self._payloads))
        (folder / _FILES["config"]).write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> Index:
        """Read an index written by :meth:`save`; the compact kinds memory-map their float32 vectors.

        Example:
            >>> index = Index.load("out/index")  # doctest: +SKIP
        """
        folder = Path(folder)
        path = folder / _FILES["config"]
        if not path.is_file():
            raise ValueError(f"{folder} is not a saved Index: {_FILES['config']} is missing; save one with Index.save")
        config = json.loads(path.read_text())
        if config.get("format") != FORMAT:
            raise ValueError(f"{path} was not written by Index.save (format={config.get('format')!r})")
        index = cls(dim=config["dim"], metric=config["metric"], kind=config["kind"], **config["params"])
        index._ids = np.asarray(json.loads((folder / _FILES["ids"]).read_text()), dtype=np.int64)
        index._payloads = json.loads((folder / _FILES["payloads"]).read_text())
        if (folder / _FILES["faiss"]).is_file():
            read = faiss.read_index_binary if index.kind == "binary" else faiss.read_index
            index._faiss = read(str(folder / _FILES["faiss"]))
            index._apply_search_params()
        if index.kind in COMPRESSED and index._faiss is not None:
            if not (folder / _FILES["vectors"]).is_file():
                raise ValueError(f"{folder} is incomplete: {_FILES['vectors']} is missing; save the index again")
            index._vectors_fp32 = np.load(folder / _FILES["vectors"], mmap_mode="r", allow_pickle=False)
        stored = 0 if index._faiss is None else index._faiss.ntotal
        if not len(index._ids) == len(index._payloads) == stored == config["size"]:
            raise ValueError(f"{folder} is inconsistent: ids, payloads and vectors differ in count; save it again")
        return index

    def _vectors(self, x, name: str, allow_1d: bool = False) -> np.ndarray:
        x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
        if allow_1d and x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty 2-D array (n, dim), got shape {x.shape}")
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(
                f"{name} have dim {x.shape[1]} but the index has dim {self.dim}; encode with the same model"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contain NaN or inf; drop or fix those rows first")
        if self.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(x)

    def _build(self, x: np.ndarray) -> faiss.Index:
        dim = x.shape[1]
        metric = faiss.METRIC_L2 if self.metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        if self.kind == "flat":
            return faiss.IndexFlat(dim, metric)
        if self.kind == "binary":
            return faiss.IndexBinaryFlat(8 * math.ceil(dim / 8))  # codes are padded to whole bytes
        if self.kind == "int8":
            index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, metric)
            index.train(x)  # per-dimension ranges, from the first add
            return index
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, int(self.params["M"]), metric)
            index.hnsw.efConstruction = int(self.params["efConstruction"])
            return index
        n = x.shape[0]
        if self.params["nlist"] is None:
            self.params["nlist"] = max(1, min(4 * int(math.sqrt(n)), n // 39))
        nlist = int(self.params["nlist"])
        if n < nlist:
            raise ValueError(
                f"kind='ivf' with nlist={nlist} needs at least {nlist} vectors in the first add() to train, got {n}; "
                "add more vectors at once, pass a smaller nlist, or use kind='flat'"
            )
        index = faiss.IndexIVFFlat(faiss.IndexFlat(dim, metric), dim, nlist, metric)
        index.train(x)
        return index

    def _apply_search_params(self) -> None:
        if self.kind == "ivf":
            self._faiss.nprobe = min(int(self.params["nprobe"]), int(self.params["nlist"]))
        elif self.kind == "hnsw":
            self._faiss.hnsw.efSearch = int(self.params["efSearch"])


def _binary_codes(x: np.ndarray) -> np.ndarray:
    """One bit per dimension, set where the value is positive, packed 8 to a byte (``IndexBinaryFlat``'s codes)."""
    return np.packbits(x > 0, axis=1)

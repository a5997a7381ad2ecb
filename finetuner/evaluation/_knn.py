"""Chunked exact kNN in torch: scoring, deterministic top-k, and the rank of the first relevant item.

Everything here works on one block of queries at a time, so memory stays ``O(chunk x N)``. Ties are
broken by index order everywhere: among equal scores the lower index ranks first.

Why torch and not faiss: on the CPUs we measured (see ``benchmarks/results/p4.md``), a torch matmul
plus ``topk`` is as fast as ``faiss.IndexFlatIP.search`` at k=10 and faster at the k~1000 that MAP@R
needs, and it lets us exclude a query's own item by index and break ties by index order.
"""

from __future__ import annotations

import numpy as np
import torch

DISTANCES = ("cosine", "dot", "euclidean")
_NEG_INF = float("-inf")
_NORM_BLOCK = 65536  # rows per block for whole-index passes (finite check, norms): bounds their temporaries
_RANK_PIECE = 8  # rows per block when ranking the first relevant item over a whole row


def as_embeddings(x, name: str) -> torch.Tensor:
    """A 2-D floating tensor view of ``x`` (numpy array or tensor), checked to be finite."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else torch.as_tensor(x).detach()
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, dim), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.float()  # half precision matmul is slow or missing on CPU
    # One sum is finite exactly when every entry is, barring overflow; only then check entry by entry, in blocks.
    if not bool(torch.isfinite(t.sum())) and not all(bool(torch.isfinite(b).all()) for b in t.split(_NORM_BLOCK)):
        raise ValueError(f"{name} contains NaN or inf; drop or fix those rows before evaluating")
    return t


def as_labels(x, n: int, name: str) -> torch.Tensor:
    """A 1-D int64 tensor of ``n`` labels."""
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach().cpu()
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be integers, got dtype {t.dtype}; map class names to ints first")
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one label per embedding ({n}), got shape {tuple(t.shape)}")
    return t.long()


class Scorer:
    """Scores query blocks against a fixed index; higher is better.

    ``cosine``: the cosine similarity (queries normalised here, the index divided by its norms per block,
    so the index is never copied). ``dot``: the inner product. ``euclidean``: ``2 q.x - |x|^2``, which is
    ``|q|^2 - |q - x|^2`` and so ranks exactly like the negative distance.
    """

    def __init__(self, index: torch.Tensor, distance: str, device: torch.device):
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.distance = distance
        self.index = index.to(device)
        self.column_term = None
        if distance != "dot":
            sq = torch.cat([(b * b).sum(1) for b in self.index.split(_NORM_BLOCK)])
            self.column_term = sq.sqrt_().clamp_min_(1e-12) if distance == "cosine" else sq

    @property
    def n(self) -> int:
        return self.index.shape[0]

    def __call__(self, queries: torch.Tensor) -> torch.Tensor:
        q = queries.to(device=self.index.device, dtype=self.index.dtype)
        if self.distance == "cosine":
            q = q / torch.linalg.vector_norm(q, dim=1, keepdim=True).clamp_min(1e-12)
        scores = q @ self.index.T
        if self.distance == "cosine":
            scores.div_(self.column_term)
        elif self.distance == "euclidean":
            scores.mul_(2).sub_(self.column_term)
        return scores


def ranked_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of the ``k`` best scores per row, best first, ties broken by lower column index.

    ``torch.topk`` picks arbitrarily among ties, so we ask for ``k + 1``: a row is ambiguous only when the
    ``k``-th and ``k+1``-th scores are equal, and only those rows are redone by scanning the whole row.
    """
    n = scores.shape[1]
    extra = int(k < n)
    vals, idx = scores.topk(k + extra, dim=1, sorted=False)
    idx, order = idx.sort(dim=1)  # index order first, then a stable sort by score keeps it among ties
    vals = vals.gather(1, order)
    vals, order = vals.sort(dim=1, descending=True, stable=True)
    idx = idx.gather(1, order)
    if extra:
        for r in (vals[:, k - 1] == vals[:, k]).nonzero().flatten().tolist():
            row, kth = scores[r], vals[r, k - 1]
            above = (row > kth).nonzero().flatten()
            above = above[row[above].sort(descending=True, stable=True).indices]
            at = (row == kth).nonzero().flatten()[: k - above.numel()]
            idx[r, :k] = torch.cat([above, at])
    return idx[:, :k]


def first_relevant_rank(scores: torch.Tensor, relevant_mask_fn, rows: torch.Tensor) -> torch.Tensor:
    """1-based rank of the best relevant column of each row in ``rows``, over the whole row.

    ``relevant_mask_fn(rows)`` gives the ``(len(rows), N)`` boolean relevance mask; every row must hold at
    least one relevant column with a finite score. Works on a few rows at a time to bound memory.
    """
    ranks = []
    cols = torch.arange(scores.shape[1], device=scores.device)
    for piece in rows.split(_RANK_PIECE):
        s = scores[piece]
        best, col = torch.where(relevant_mask_fn(piece), s, _NEG_INF).max(dim=1)  # max gives the first index
        ahead = (s > best[:, None]).sum(1) + ((s == best[:, None]) & (cols < col[:, None])).sum(1)
        ranks.append(ahead + 1)
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long, device=scores.device)


def plan_chunks(k_sorted: list[int], n_cols: int, budget_bytes: int, chunk_size: int | None):
    """Yield ``(start, end)`` row ranges over queries sorted by their top-k depth ``k_sorted``.

    With ``chunk_size`` the ranges have that many rows. Otherwise each range holds as many rows as fit
    ``budget_bytes``, counting 4 bytes per score and ~80 bytes per kept top-k entry (top-k, sorts, metrics).
    """
    n = len(k_sorted)
    start = 0
    while start < n:
        if chunk_size is not None:
            end = min(n, start + chunk_size)
        else:
            end = n
            while True:
                fit = max(1, budget_bytes // (4 * n_cols + 80 * (k_sorted[end - 1] + 1)))
                if end - start <= fit:
                    break
                end = start + fit
        yield start, end
        start = end

"""Per-query ranking metrics from a block of binary relevance rows, summed over blocks.

The definitions live in the docstring of :func:`finetuner.evaluation.retrieval_metrics`; this file is
their vectorised form. All arithmetic is float64.
"""

from __future__ import annotations

import torch


class RankingSums:
    """Running sums of per-query metrics; :meth:`means` divides by the number of queries seen, and
    :meth:`group_means` by the number seen in each group (e.g. each query class).

    Args:
        ks: the cutoffs for the ``@k`` metrics.
        at_r: also sum ``map@r`` and ``r_precision`` (needs each relevance row to reach depth R).
        n_groups: how many groups `add` may name (0: no per-group sums).
    """

    def __init__(self, ks: tuple[int, ...], at_r: bool, n_groups: int = 0):
        self.ks = ks
        self.at_r = at_r
        self.count = 0
        self.sums: dict[str, float] = {}
        self.n_groups = n_groups
        self.group_count = torch.zeros(n_groups, dtype=torch.float64)
        self.group_sums: dict[str, torch.Tensor] = {}
        self._groups: torch.Tensor | None = None  # the groups of the block being added

    def _add(self, key: str, per_query: torch.Tensor) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(per_query.sum())
        if self._groups is not None:
            sums = self.group_sums.setdefault(key, torch.zeros(self.n_groups, dtype=torch.float64))
            sums.index_add_(0, self._groups, per_query.to("cpu", torch.float64))

    def add(
        self, rel: torch.Tensor, n_relevant: torch.Tensor, first_rank: torch.Tensor, groups: torch.Tensor | None = None
    ) -> None:
        """Add one block.

        Args:
            rel: ``(c, K)`` bool, ``rel[i, j]`` is whether the item at rank ``j + 1`` is relevant to query ``i``.
            n_relevant: ``(c,)`` number R of relevant items per query among all candidates (>= 1).
            first_rank: ``(c,)`` 1-based rank of the first relevant item over the whole ranking.
            groups: ``(c,)`` the group of each query, in ``[0, n_groups)``; needs ``n_groups`` > 0.
        """
        self._groups = None if groups is None else groups.to("cpu", torch.long)
        if self._groups is not None:
            self.group_count.index_add_(0, self._groups, torch.ones(len(self._groups), dtype=torch.float64))
        rel = rel.to(torch.float64)
        n_rel = n_relevant.to(device=rel.device, dtype=torch.float64)
        depth = rel.shape[1]
        top = max(depth, max(self.ks))
        pos = torch.arange(1, top + 1, dtype=torch.float64, device=rel.device)
        ideal = (1.0 / torch.log2(pos + 1)).cumsum(0)  # ideal[m - 1] = IDCG with m relevant items
        hits = rel.cumsum(1)
        gain = rel * hits / pos[:depth]  # precision at each relevant rank, 0 elsewhere
        disc = rel / torch.log2(pos[:depth] + 1)
        for k in self.ks:
            kk = min(k, depth)  # a ranking shorter than k counts as padded with irrelevant items
            found = hits[:, kk - 1]
            self._add(f"recall@{k}", (found > 0).double())
            self._add(f"fraction@{k}", found / n_rel)
            self._add(f"precision@{k}", found / k)
            self._add(f"map@{k}", gain[:, :kk].sum(1) / n_rel.clamp(max=k))
            ideal_k = ideal[(n_rel.clamp(max=k) - 1).long()]
            self._add(f"ndcg@{k}", disc[:, :kk].sum(1) / ideal_k)
        if self.at_r:
            within_r = pos[:depth] <= n_rel[:, None]
            self._add("map@r", (gain * within_r).sum(1) / n_rel)
            self._add("r_precision", hits.gather(1, n_rel.long()[:, None] - 1)[:, 0] / n_rel)
        self._add("mrr", 1.0 / first_rank.to(torch.float64))
        self.count += rel.shape[0]

    def means(self, keys: list[str]) -> dict[str, float]:
        """The averages of ``keys``, in that order."""
        return {key: self.sums[key] / self.count for key in keys}

    def group_means(self, keys: list[str]) -> dict[int, dict[str, float]]:
        """Per group that had at least one query: the averages of ``keys`` over its queries."""
        return {
            int(g): {key: float(self.group_sums[key][g] / self.group_count[g]) for key in keys}
            for g in self.group_count.nonzero().flatten().tolist()
        }

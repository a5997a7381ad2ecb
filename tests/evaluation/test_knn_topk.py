"""The chunked kNN building blocks: deterministic top-k, first relevant rank, chunk planning."""

import pytest
import torch

from finetuner.evaluation._knn import first_relevant_rank, plan_chunks, ranked_topk


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranked_topk_breaks_ties_by_index(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (6, 50), generator=g).float()  # heavy ties
    for k in (1, 7, 49, 50):
        got = ranked_topk(scores, k)
        for row, idx in zip(scores.tolist(), got.tolist()):
            assert idx == sorted(range(50), key=lambda j: (-row[j], j))[:k]


def test_first_relevant_rank_over_whole_row():
    scores = torch.tensor([[3.0, 2.0, 2.0, 1.0, 2.0], [0.0, 1.0, 1.0, 1.0, 5.0]])
    relevant = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 1, 0]], dtype=torch.bool)
    # row 0: best relevant is item 4 (score 2), behind item 0 (3) and items 1, 2 (tie, lower index): rank 4
    # row 1: best relevant is item 3 (score 1), behind item 4 (5) and items 1, 2 (tie): rank 4
    ranks = first_relevant_rank(scores, lambda rows: relevant[rows], torch.tensor([0, 1]))
    assert ranks.tolist() == [4, 4]


def test_plan_chunks_covers_rows_and_respects_budget():
    depths = [10] * 5 + [400] * 3 + [5000]
    budget = 4 * 1000 * 8 + 80 * 11 * 8  # 8 rows of depth 10 over 1000 columns
    chunks = list(plan_chunks(depths, 1000, budget, None))
    assert chunks[0][0] == 0 and chunks[-1][1] == len(depths)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    for start, end in chunks:
        assert end - start == 1 or (end - start) * (4 * 1000 + 80 * (depths[end - 1] + 1)) <= budget
    assert list(plan_chunks(depths, 1000, budget, 4)) == [(0, 4), (4, 8), (8, 9)]

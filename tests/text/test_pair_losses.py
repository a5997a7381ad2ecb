"""Pair losses against naive per-row loops on five hand-made embeddings."""

import math

import pytest
import torch

from finetuner.training.pair_losses import (
    CLIPLoss,
    CosineSimilarityLoss,
    MultipleNegativesRankingLoss,
    gather_with_grad,
)

QUERIES = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.5, -1.0, 2.0]]
DOCUMENTS = [[0.9, 0.1, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0], [1.0, 0.0, 1.0], [-1.0, 0.5, 0.0]]
NEGATIVES = [[1.0, 0.2, 0.0], [0.0, 0.0, -1.0]]
DTYPES = [torch.float32, torch.float64]


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _naive_ranking(rows, columns, scale):
    """Mean over rows i of -log softmax(scale * cos(row_i, column_j))_j at j = i."""
    total = 0.0
    for i, row in enumerate(rows):
        logits = [scale * _cos(row, column) for column in columns]
        total += math.log(sum(math.exp(v) for v in logits)) - logits[i]
    return total / len(rows)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("symmetric", [False, True])
def test_multiple_negatives_ranking_matches_naive(dtype, symmetric):
    loss = MultipleNegativesRankingLoss(scale=5.0, symmetric=symmetric)
    value = loss(torch.tensor(QUERIES, dtype=dtype), torch.tensor(DOCUMENTS, dtype=dtype))
    expected = _naive_ranking(QUERIES, DOCUMENTS, 5.0)
    if symmetric:
        expected = (expected + _naive_ranking(DOCUMENTS, QUERIES, 5.0)) / 2
    assert value.dtype == dtype
    assert value.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hard_negatives_join_the_candidates(dtype):
    loss = MultipleNegativesRankingLoss(scale=20.0)
    value = loss(
        torch.tensor(QUERIES, dtype=dtype),
        torch.tensor(DOCUMENTS, dtype=dtype),
        negatives=torch.tensor(NEGATIVES, dtype=dtype),
    )
    assert value.item() == pytest.approx(_naive_ranking(QUERIES, DOCUMENTS + NEGATIVES, 20.0), rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_similarity_loss_matches_naive(dtype):
    scores = [1.0, 0.5, 0.8, 0.0, -0.2]
    value = CosineSimilarityLoss()(
        torch.tensor(QUERIES, dtype=dtype), torch.tensor(DOCUMENTS, dtype=dtype), torch.tensor(scores)
    )
    expected = sum((_cos(q, d) - s) ** 2 for q, d, s in zip(QUERIES, DOCUMENTS, scores)) / len(scores)
    assert value.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_loss_matches_naive_and_learns_its_temperature(dtype):
    loss = CLIPLoss(init_scale=10.0)
    value = loss(torch.tensor(QUERIES, dtype=dtype), torch.tensor(DOCUMENTS, dtype=dtype))
    expected = (_naive_ranking(QUERIES, DOCUMENTS, 10.0) + _naive_ranking(DOCUMENTS, QUERIES, 10.0)) / 2
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert loss.log_scale.grad is not None and loss.log_scale.grad.item() != 0
    assert CLIPLoss(init_scale=500.0).scale.item() == pytest.approx(100.0)


def test_losses_take_the_trainers_call_with_scores_or_none():
    """The trainer calls every pair loss as ``loss(query, document, scores_or_None)``."""
    query, document, scores = torch.tensor(QUERIES), torch.tensor(DOCUMENTS), torch.rand(5)
    for loss in (MultipleNegativesRankingLoss(), CLIPLoss()):
        assert (
            loss(query, document, None).item() == loss(query, document, scores).item() == loss(query, document).item()
        )
    with pytest.raises(ValueError, match="learns from scored pairs"):
        CosineSimilarityLoss()(query, document, None)


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same \\(B, D\\) shape"):
        MultipleNegativesRankingLoss()(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="one score per pair"):
        CosineSimilarityLoss()(torch.randn(3, 4), torch.randn(3, 4), torch.randn(2))


def test_gather_with_grad_is_identity_in_one_process():
    x = torch.randn(4, 3, requires_grad=True)
    gathered = gather_with_grad(x)
    assert gathered is x
    gathered.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(4, 3))


def _two_rank_worker(rank, folder, queries, documents):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    rows = slice(3 * rank, 3 * rank + 3)
    for symmetric in (False, True):
        query, document = queries[rows].clone().requires_grad_(), documents[rows].clone().requires_grad_()
        loss = MultipleNegativesRankingLoss(scale=5.0, symmetric=symmetric)(query, document)
        loss.backward()
        result = {"loss": loss.detach(), "query": query.grad, "document": document.grad}
        torch.save(result, f"{folder}/rank{rank}_{symmetric}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # two processes that import torch and finetuner: ~20 s on two cores
def test_two_ranks_give_the_full_batch_loss_and_gradient(tmp_path):
    """Under DDP each rank's loss covers its rows against all documents; averaged as DDP averages gradients,
    the result is the single-process loss on the whole batch."""
    queries, documents = torch.randn(6, 4), torch.randn(6, 4)
    torch.multiprocessing.spawn(_two_rank_worker, args=(str(tmp_path), queries, documents), nprocs=2)
    for symmetric in (False, True):
        ranks = [torch.load(tmp_path / f"rank{r}_{symmetric}.pt") for r in range(2)]
        query, document = queries.clone().requires_grad_(), documents.clone().requires_grad_()
        full = MultipleNegativesRankingLoss(scale=5.0, symmetric=symmetric)(query, document)
        full.backward()
        assert torch.stack([r["loss"] for r in ranks]).mean().item() == pytest.approx(full.item(), rel=1e-5)
        torch.testing.assert_close(torch.cat([r["query"] for r in ranks]) / 2, query.grad)
        torch.testing.assert_close(torch.cat([r["document"] for r in ranks]) / 2, document.grad)

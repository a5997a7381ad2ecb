"""Pair losses: the `PairLoss` contract (checks, registry, a user's loss through fit), and each built-in loss
against a naive per-row loop on five hand-made embeddings."""

import importlib
import math
import pkgutil

import numpy as np
import pytest
import torch

import finetuner
from finetuner.data import PairData
from finetuner.training import build_loss
from finetuner.training import pair_losses as pair_losses_package
from finetuner.training.loss_names import CLASSIFICATION_LOSSES, pml_names
from finetuner.training.losses import is_pair_loss, list_losses, needs_two_classes
from finetuner.training.pair_losses import (
    PAIR_LOSSES,
    CLIPLoss,
    CosineSimilarityLoss,
    MultipleNegativesRankingLoss,
    PairLoss,
    gather_with_grad,
    list_pair_losses,
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


@pytest.mark.parametrize("loss", [MultipleNegativesRankingLoss(), CosineSimilarityLoss(), CLIPLoss()])
def test_every_pair_loss_checks_its_inputs(loss):
    query, document, scores = torch.randn(3, 4), torch.randn(3, 4), torch.rand(3)
    with pytest.raises(ValueError, match="same \\(B, D\\) shape, got \\(3, 4\\) and \\(2, 4\\)"):
        loss(query, torch.randn(2, 4), scores)
    with pytest.raises(ValueError, match="same \\(B, D\\) shape"):
        loss(torch.randn(3), torch.randn(3), scores)
    with pytest.raises(ValueError, match="one score per pair, shape \\(3,\\), got \\(2,\\)"):
        loss(query, document, torch.randn(2))
    with pytest.raises(ValueError, match="query embeddings are on cpu but document embeddings on meta"):
        loss(query, document.to("meta"), scores)


def test_hard_negatives_are_checked_and_refused_by_losses_that_ignore_them():
    query, document = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="hard negatives of shape \\(N, 4\\), got \\(2, 5\\)"):
        MultipleNegativesRankingLoss()(query, document, negatives=torch.randn(2, 5))
    with pytest.raises(ValueError, match="hard negatives on meta"):
        MultipleNegativesRankingLoss()(query, document, negatives=torch.randn(2, 4, device="meta"))
    with pytest.raises(ValueError, match="CLIPLoss does not use hard negatives.*MultipleNegativesRankingLoss"):
        CLIPLoss()(query, document, negatives=torch.randn(2, 4))


def test_registry_holds_every_pair_loss_and_build_loss_finds_them():
    package = pair_losses_package
    modules = [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    defined = {
        cls.__name__
        for module in modules
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, PairLoss) and cls.__module__ == module.__name__
    } - {"PairLoss"}
    built_in = {n for n in list_pair_losses() if PAIR_LOSSES.get(n).__module__.startswith(package.__name__)}
    assert defined and defined == {PAIR_LOSSES.get(name).__name__ for name in built_in}  # found without an import line
    assert {"InfoNCELoss", "CachedInfoNCELoss"} <= built_in  # aliases
    assert defined <= set(package.__all__)  # every module's loss is exported
    assert defined | {"InfoNCELoss"} <= set(list_pair_losses()) <= set(list_losses())
    assert {"TripletMarginLoss", "ArcFaceLoss", "CrossEntropyLoss"} <= set(list_losses())
    needed = {"MatryoshkaPairLoss": {"dims": (4, 2)}}  # options without a default
    for name in defined:
        loss = build_loss(name, **needed.get(name, {}))
        assert type(loss).__name__ == name and is_pair_loss(loss) and not needs_two_classes(loss)
    assert type(build_loss("InfoNCELoss", scale=5.0)) is MultipleNegativesRankingLoss
    triplet = build_loss("TripletMarginLoss")
    assert not is_pair_loss(triplet) and needs_two_classes(triplet)
    with pytest.raises(ValueError, match="Unknown loss 'CLIPLos'. Did you mean CLIPLoss"):
        build_loss("CLIPLos")


class AlignmentLoss(PairLoss):
    """A user's pair loss: pull each query towards its document (defined here, found by name)."""

    calls: list[float] = []

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def compute_loss(self, query_embeddings, document_embeddings, scores, negatives):
        assert query_embeddings.requires_grad  # the trainable head's output reaches the loss
        cosine = torch.nn.functional.cosine_similarity(query_embeddings, document_embeddings)
        loss = self.weight * (1 - cosine).mean()
        self.calls.append(loss.item())
        return loss


def test_a_user_pair_loss_is_found_by_name_and_trains(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    pairs = PairData(list(images), list(np.roll(images, 1, axis=0)), None, None)
    assert "AlignmentLoss" in list_losses() and isinstance(build_loss("AlignmentLoss"), AlignmentLoss)
    AlignmentLoss.calls.clear()
    run = finetuner.fit(
        "test_cnn", pairs, pretrained=False, freeze=True, output_dim=8, loss="AlignmentLoss",
        loss_options={"weight": 2.0}, epochs=3, batch_size=4, cache_dir=tmp_path,
    )  # fmt: skip
    assert len(AlignmentLoss.calls) == 3 * 2  # 3 epochs of 2 batches
    history = [record["loss"] for record in run.history]
    expected = [np.mean(AlignmentLoss.calls[i : i + 2]) for i in (0, 2, 4)]
    np.testing.assert_allclose(history, expected, rtol=1e-5)
    assert all(0 <= value <= 4 for value in AlignmentLoss.calls) and history[0] != history[-1]


def test_a_pair_loss_name_taken_by_another_class_is_refused():
    with pytest.raises(ValueError, match="'InfoNCELoss' is already registered.*MultipleNegativesRankingLoss"):

        class MyInfoNCE(PairLoss, aliases=("InfoNCELoss",)):
            def compute_loss(self, query_embeddings, document_embeddings, scores, negatives):
                return query_embeddings.sum()

    assert "MyInfoNCE" not in list_pair_losses()  # nothing half-registered


@pytest.mark.parametrize("name", ["MarginLoss", "CrossEntropyLoss"])
def test_a_pair_loss_named_like_a_pml_or_classification_loss_is_refused(name):
    with pytest.raises(ValueError, match=f"pair loss {name!r}.*pytorch-metric-learning or classification.*another"):
        type(name, (PairLoss,), {"compute_loss": lambda self, q, d, s, n: q.sum()})
    assert name not in list_pair_losses() and name in list_losses()  # still the other library's


def test_no_built_in_pair_loss_takes_a_pml_name():
    assert not set(list_pair_losses()) & {*pml_names("losses"), *CLASSIFICATION_LOSSES}


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

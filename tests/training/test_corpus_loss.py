"""`CorpusRankingLoss`: values and gradients against a per-query loop over the corpus (what fit does with it:
tests/vectors/test_fit.py)."""

import math

import pytest
import torch

from finetuner.training import build_loss
from finetuner.training.pair_losses import CorpusRankingLoss, MatryoshkaPairLoss

torch.manual_seed(0)
QUERIES = torch.randn(4, 5, dtype=torch.float64)
CORPUS = torch.randn(7, 5, dtype=torch.float64)
DOCUMENTS = CORPUS[[2, 0, 5, 2]] * torch.tensor([[1.0], [3.0], [0.5], [2.0]], dtype=torch.float64)  # rows 1, 3 scaled
NEGATIVES = torch.randn(2, 5, dtype=torch.float64)


def _naive(queries, documents, corpus, scale, negatives=()):
    """Mean over queries of -log softmax over (own document, every corpus row that is not it, negatives)."""
    def cos(a, b):
        return (a @ b) / (a.norm() * b.norm())

    total = 0
    for query, document in zip(queries, documents):
        candidates = [row for row in corpus if cos(row, document) < 1 - 1e-6] + list(negatives)
        logits = torch.stack([scale * cos(query, document)] + [scale * cos(query, row) for row in candidates])
        total = total + torch.logsumexp(logits, 0) - logits[0]
    return total / len(queries)


@pytest.mark.parametrize("negatives", [None, NEGATIVES])
def test_value_and_gradient_match_a_loop_over_the_corpus(negatives):
    loss = CorpusRankingLoss(scale=7.0)
    loss.use_documents(CORPUS)
    queries = QUERIES.clone().requires_grad_()
    value = loss(queries, DOCUMENTS, negatives=negatives)
    (gradient,) = torch.autograd.grad(value, queries)
    naive_queries = QUERIES.clone().requires_grad_()
    expected = _naive(naive_queries, DOCUMENTS, CORPUS, 7.0, () if negatives is None else negatives)
    (naive_gradient,) = torch.autograd.grad(expected, naive_queries)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(gradient, naive_gradient, rtol=1e-5, atol=1e-7)  # the corpus is kept in float32


def test_a_query_whose_document_is_the_whole_corpus_has_nothing_to_rank():
    loss = CorpusRankingLoss()
    loss.use_documents(CORPUS[:1])
    assert loss(QUERIES[:2], CORPUS[[0, 0]]).item() == pytest.approx(0.0)  # own document only: log 1


def test_a_sample_of_a_large_corpus_and_matryoshka_prefixes():
    loss = CorpusRankingLoss(max_documents=3)
    loss.use_documents(CORPUS)
    values = {round(loss(QUERIES, DOCUMENTS).item(), 6) for _ in range(20)}
    assert len(values) > 1 and all(math.isfinite(v) for v in values)  # a fresh sample of 3 rows each step
    whole = CorpusRankingLoss(scale=5.0, max_documents=7)
    whole.use_documents(CORPUS)
    prefixes = MatryoshkaPairLoss(whole, (5, 3))  # the corpus truncated to each prefix like the documents
    expected = _naive(QUERIES, DOCUMENTS, CORPUS, 5.0) + _naive(QUERIES[:, :3], DOCUMENTS[:, :3], CORPUS[:, :3], 5.0)
    assert prefixes(QUERIES, DOCUMENTS).item() == pytest.approx(expected.item(), rel=1e-6)


def test_without_a_corpus_or_with_a_bad_one_it_says_what_to_do():
    with pytest.raises(ValueError, match="call use_documents"):
        CorpusRankingLoss()(QUERIES, DOCUMENTS)
    with pytest.raises(ValueError, match="shape \\(N >= 1, D\\), got \\(0, 5\\)"):
        CorpusRankingLoss().use_documents(CORPUS[:0])
    with pytest.raises(ValueError, match="max_documents must be a positive number"):
        CorpusRankingLoss(max_documents=0)
    assert isinstance(build_loss("CorpusRankingLoss"), CorpusRankingLoss)

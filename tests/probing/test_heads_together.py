"""`train_heads` / `train_together`: heads trained in one loop end where each would end trained alone."""

import copy

import numpy as np
import pytest
import torch

from finetuner.data import ClassBalancedSampler
from finetuner.probing import HeadSpec, Recipe, train_head, train_heads, train_together
from finetuner.probing.recipe import HeadsTogether
from finetuner.tailor import create_head
from finetuner.training import TrainConfig, Trainer, build_loss, build_miner
from finetuner.training.batches import TensorBatches


def _layers():
    generator = torch.Generator().manual_seed(3)
    labels = np.repeat(np.arange(6), 10)
    shift = torch.as_tensor(labels, dtype=torch.float32)[:, None]
    return [torch.randn(60, dim, generator=generator) + 0.3 * shift for dim in (12, 20)], labels


@pytest.mark.parametrize("miner", [None, "MultiSimilarityMiner"])
def test_together_equals_one_at_a_time(miner):
    layers, labels = _layers()
    recipe = Recipe(epochs=3, batch_size=16, device="cpu", miner=miner, loss="MultiSimilarityLoss" if miner else
                    "TripletMarginLoss")  # fmt: skip
    specs = [HeadSpec("linear", 8), HeadSpec("residual", 6), HeadSpec("projection", 8)]
    features = [layers[0], layers[0], layers[1]]  # two heads share a layer
    together = train_heads(features, labels, specs, recipe, num_classes=6)
    for rows, spec, head in zip(features, specs, together):
        alone = train_head(rows, labels, spec, recipe, num_classes=6)
        shorter = train_head(rows, labels, spec, recipe.replace(epochs=1), num_classes=6)
        assert type(head) is type(alone) and not head.training
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(head.state_dict()[name], value, rtol=1e-5, atol=1e-6)
        moved = [not torch.equal(a, b) for a, b in zip(alone.state_dict().values(), shorter.state_dict().values())]
        assert any(moved)  # the later epochs moved the weights, so the equality above says something


def test_heads_together_routes_sources():
    first, second, third = torch.nn.Linear(3, 2), torch.nn.Linear(2, 4), torch.nn.Linear(3, 1)
    together = HeadsTogether([first, second, third], [0, 1, 0], [2, 4, 1])
    x, y = torch.randn(7, 3), torch.randn(7, 2)
    torch.testing.assert_close(together([x, y]), torch.cat([first(x), second(y), third(x)], dim=1))
    assert together.outputs == [(0, 2), (2, 6), (6, 7)]


def test_none_head_and_mismatched_lengths_are_refused():
    layers, labels = _layers()
    with pytest.raises(ValueError, match="nothing to train"):
        train_heads(layers, labels, [HeadSpec("none"), HeadSpec("linear", 4)], Recipe(device="cpu"), num_classes=6)
    with pytest.raises(ValueError, match="one features tensor per head"):
        train_heads(layers, labels, [HeadSpec("linear", 4)], Recipe(device="cpu"), num_classes=6)


@pytest.mark.parametrize(("optimizer", "miner"), [("adam", None), ("adam", "MultiSimilarityMiner"), ("sgd", None)])
def test_heads_on_their_own_batches_end_as_trained_one_at_a_time(optimizer, miner):
    """What `preflight` does: fit's head from one start on other seeds' batches and on shuffled labels, together."""
    layers, labels = _layers()
    features = layers[1]
    config = TrainConfig(epochs=3, batch_size=16, device="cpu", optimizer=optimizer, learning_rate=1e-2)
    start = create_head("residual", features.shape[1], 6)
    start.initialize(features)
    shuffled = np.random.default_rng(2).permutation(labels)
    runs = [(labels, 0), (labels, 1), (shuffled, 2)]  # (labels, seed): as many batches an epoch

    def source(run_labels, seed):
        sampler = ClassBalancedSampler(run_labels.tolist(), 4, 16, seed=seed)
        return TensorBatches([features], torch.as_tensor(run_labels), sampler)

    heads = [copy.deepcopy(start) for _ in runs]
    together = train_together(
        heads, [build_loss("TripletMarginLoss") for _ in runs], [source(*run) for run in runs], config,
        miners=[build_miner(miner) for _ in runs],
    )  # fmt: skip
    assert [id(head) for head in together] == [id(head) for head in heads] and not together[0].training
    ends = []
    for run, head in zip(runs, together):
        alone = copy.deepcopy(start)  # the plain loop: Trainer alone, the optimizer's default implementation
        Trainer(alone, build_loss("TripletMarginLoss"), source(*run), config, miner=build_miner(miner)).fit()
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(head.state_dict()[name], value, rtol=1e-4, atol=1e-5)
        ends.append(alone.state_dict()["residual.3.weight"])
    assert not torch.allclose(ends[0], ends[1]) and not torch.allclose(ends[0], ends[2])  # the runs differ


def test_sources_of_different_lengths_are_refused():
    layers, labels = _layers()
    short = ClassBalancedSampler(labels[:30].tolist(), 4, 16)
    sources = [TensorBatches([layers[0]], torch.as_tensor(labels), ClassBalancedSampler(labels.tolist(), 4, 16)),
               TensorBatches([layers[0][:30]], torch.as_tensor(labels[:30]), short)]  # fmt: skip
    heads = [torch.nn.Linear(12, 4), torch.nn.Linear(12, 4)]
    with pytest.raises(ValueError, match="as many batches"):
        train_together(heads, [build_loss("TripletMarginLoss")] * 2, sources, TrainConfig(device="cpu"))

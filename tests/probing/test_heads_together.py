"""`train_heads`: heads trained in one loop end where each would end trained alone."""

import numpy as np
import pytest
import torch

from finetuner.probing.recipe import HeadSpec, HeadsTogether, Recipe, train_head, train_heads


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


def test_heads_together_routes_columns():
    first, second = torch.nn.Linear(3, 2), torch.nn.Linear(2, 4)
    together = HeadsTogether([first, second], [(0, 3), (3, 5)], [2, 4])
    x = torch.randn(7, 5)
    torch.testing.assert_close(together(x), torch.cat([first(x[:, :3]), second(x[:, 3:])], dim=1))
    assert together.outputs == [(0, 2), (2, 6)]


def test_none_head_and_mismatched_lengths_are_refused():
    layers, labels = _layers()
    with pytest.raises(ValueError, match="nothing to train"):
        train_heads(layers, labels, [HeadSpec("none"), HeadSpec("linear", 4)], Recipe(device="cpu"), num_classes=6)
    with pytest.raises(ValueError, match="one features tensor per head"):
        train_heads(layers, labels, [HeadSpec("linear", 4)], Recipe(device="cpu"), num_classes=6)

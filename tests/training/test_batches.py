"""Batch sources: the shuffled sampler's coverage, seeding and DDP shards; cached-feature batches."""

import pytest
import torch
from torch.utils.data import TensorDataset

from finetuner.data import ShuffledBatchSampler
from finetuner.training import TrainConfig, Trainer
from finetuner.training.batches import BatchSource, LoaderBatches, PairTensorBatches, TensorBatches


def test_every_item_once_per_epoch_and_epochs_differ():
    sampler = ShuffledBatchSampler(10, batch_size=4, seed=0)
    first = [i for batch in sampler for i in batch]
    assert sorted(first) == list(range(10)) and len(list(sampler)) == len(sampler) == 3
    sampler.set_epoch(1)
    assert [i for batch in sampler for i in batch] != first


def test_a_trailing_batch_of_one_is_dropped():
    sampler = ShuffledBatchSampler(9, batch_size=4)
    assert [len(b) for b in sampler] == [4, 4] and len(sampler) == 2


def test_ranks_get_equal_batches_covering_everything():
    shards = [list(ShuffledBatchSampler(11, batch_size=2, num_replicas=3, rank=r)) for r in range(3)]
    assert [[len(b) for b in shard] for shard in shards] == [[2, 2]] * 3  # 11 items padded to 3 x 4
    assert {i for shard in shards for batch in shard for i in batch} == set(range(11))
    assert all(len(ShuffledBatchSampler(11, 2, num_replicas=3, rank=r)) == 2 for r in range(3))


def test_tensor_batches_follow_the_sampler_and_cycle_views():
    views = [torch.zeros(6, 2), torch.ones(6, 2)]
    labels = torch.arange(6)
    batches = TensorBatches(views, labels, ShuffledBatchSampler(6, batch_size=3))
    epoch0 = list(batches.epoch(0))
    assert all(torch.equal(f, torch.zeros(3, 2)) for f, _ in epoch0)
    assert all(torch.equal(f, torch.ones(3, 2)) for f, _ in batches.epoch(1))
    assert sorted(torch.cat([y for _, y in epoch0]).tolist()) == list(range(6))


def test_every_batch_source_is_a_batch_source_and_a_half_written_one_is_refused():
    sampler = ShuffledBatchSampler(6, batch_size=3)
    columns = {"queries": torch.zeros(6, 2), "documents": torch.ones(6, 2)}
    sources = [
        TensorBatches([torch.zeros(6, 2)], torch.arange(6), sampler),
        PairTensorBatches(columns, None, sampler),
        LoaderBatches(TensorDataset(torch.zeros(6, 2), torch.arange(6)), sampler, num_workers=0),
    ]
    for source in sources:
        assert isinstance(source, BatchSource) and len(source) == 2 == len(list(source.epoch(0)))

    class NoEpoch(BatchSource):
        def __len__(self) -> int:
            return 1

    with pytest.raises(TypeError, match="abstract method '?epoch"):
        NoEpoch()


def test_pair_tensor_batches_give_none_for_missing_scores_and_negatives():
    columns = {"queries": torch.arange(4.0)[:, None], "documents": -torch.arange(4.0)[:, None]}
    for scores in (None, [0.1, 0.2, 0.3, 0.4]):
        for queries, documents, batch_scores, negatives in PairTensorBatches(
            columns, scores, ShuffledBatchSampler(4, batch_size=2)
        ).epoch(0):
            assert torch.equal(documents, -queries) and negatives is None
            assert batch_scores is None if scores is None else torch.allclose(batch_scores, (queries[:, 0] + 1) / 10)


def test_a_user_batch_source_drives_the_trainer():
    class Repeat(BatchSource):
        """The same labelled batch, ``steps`` times an epoch."""

        def __init__(self, steps: int):
            self.steps = steps
            self.epochs: list[int] = []

        def __len__(self) -> int:
            return self.steps

        def epoch(self, epoch: int):
            self.epochs.append(epoch)
            features, labels = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 2
            return iter([(features, labels)] * self.steps)

    source = Repeat(steps=3)
    head = torch.nn.Linear(4, 2)
    history = Trainer(head, torch.nn.CrossEntropyLoss(), source, TrainConfig(epochs=2, device="cpu")).fit()
    assert source.epochs == [0, 1] and [r["epoch"] for r in history] == [1, 2]

"""Batch sources: the shuffled sampler's coverage, seeding and DDP shards; cached-feature batches."""

import torch

from finetuner.training.batches import ShuffledBatchSampler, TensorBatches


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

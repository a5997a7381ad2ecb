import logging
import warnings
from collections import Counter

import numpy as np
import pytest

from finetuner.data import ClassBalancedSampler, DataError


def epoch(sampler: ClassBalancedSampler, number: int = 0) -> list[list[int]]:
    sampler.set_epoch(number)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    return batches


def no_warnings(**kwargs) -> ClassBalancedSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return ClassBalancedSampler(**kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sizes", [[8, 8, 8, 8], [13, 5, 9, 21, 4, 7], [40, 4, 4, 4]])
def test_every_index_each_epoch_with_m_items_of_distinct_classes(sizes, seed):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    sampler = no_warnings(labels=labels, num_items_per_class=4, batch_size=8, seed=seed)
    for number in range(2):
        batches = epoch(sampler, number)
        assert set(np.concatenate(batches).tolist()) == set(range(len(labels)))
        for batch in batches:
            assert len(batch) == 8
            counts = Counter(labels[batch].tolist())
            assert len(counts) == 2 and set(counts.values()) == {4}
            assert len(set(batch)) == 8  # no item twice in a batch when classes have >= m items


def test_number_of_batches_is_fixed_by_the_labels():
    balanced = no_warnings(labels=np.repeat(np.arange(4), 8), num_items_per_class=4, batch_size=8)
    assert len(balanced) == 4  # 8 chunks, 2 per batch: nothing repeated
    skewed = no_warnings(labels=np.repeat(np.arange(4), [40, 4, 4, 4]), num_items_per_class=4, batch_size=8)
    assert len(skewed) == 10  # the big class has 10 chunks and a batch holds it once


def test_seeded_epochs_reproduce_and_differ():
    labels = np.repeat(np.arange(5), 6)
    a = ClassBalancedSampler(labels, 2, batch_size=6, seed=3)
    b = ClassBalancedSampler(labels, 2, batch_size=6, seed=3)
    assert epoch(a, 1) == epoch(b, 1)
    assert epoch(a, 1) != epoch(a, 2)
    assert epoch(a, 0) != epoch(ClassBalancedSampler(labels, 2, batch_size=6, seed=4), 0)


def adjustments(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "finetuner" and "adjusted" in r.getMessage()]


def test_small_classes_are_sampled_with_replacement_said_in_one_info_line(caplog):
    labels = np.repeat(np.arange(4), [6, 1, 2, 6])
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="finetuner"):
        warnings.simplefilter("error")  # an ordinary adjustment is no warning
        sampler = ClassBalancedSampler(labels, 4, batch_size=8)
    lines = adjustments(caplog)
    assert len(lines) == 1 and "2 classes have fewer than 4 items" in lines[0]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "finetuner")
    batches = epoch(sampler)
    assert set(np.concatenate(batches).tolist()) == set(range(len(labels)))
    assert all(set(Counter(labels[b].tolist()).values()) == {4} for b in batches)


@pytest.mark.parametrize(
    ("m", "batch_size", "classes", "expected", "message"),
    [
        (4, 10, 5, (4, 8), "batch_size 10 -> 8"),
        (8, 8, 5, (4, 8), "num_items_per_class 8 -> 4"),
        (2, 16, 3, (5, 15), "only 3 classes"),
    ],
)
def test_impossible_settings_are_adjusted_and_logged(m, batch_size, classes, expected, message, caplog):
    with caplog.at_level(logging.INFO, logger="finetuner"):
        sampler = ClassBalancedSampler(np.repeat(np.arange(classes), 8), m, batch_size=batch_size)
    assert any(message in line for line in adjustments(caplog))
    assert (sampler.m, sampler.batch_size) == expected
    assert all(len(batch) == expected[1] for batch in epoch(sampler))


def test_fewer_than_two_classes_raise():
    with pytest.raises(DataError, match="at least 2 classes"):
        ClassBalancedSampler([3, 3, 3, 3], 2, batch_size=4)


def test_ranks_get_disjoint_equal_shares():
    labels = np.repeat(np.arange(4), 8)
    shards = [ClassBalancedSampler(labels, 4, batch_size=8, seed=5, num_replicas=2, rank=r) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 2
    indices = [np.concatenate(epoch(shard, 3)).tolist() for shard in shards]
    assert not set(indices[0]) & set(indices[1])
    assert sorted(indices[0] + indices[1]) == list(range(32))
    # 3 batches' worth of chunks are spread over 4 batches so every rank runs the same number of steps.
    odd = [ClassBalancedSampler(np.repeat(np.arange(3), 4), 2, batch_size=4, num_replicas=2, rank=r) for r in range(2)]
    assert len(odd[0]) == len(odd[1]) == 2
    assert set(np.concatenate(epoch(odd[0]) + epoch(odd[1])).tolist()) == set(range(12))
    with pytest.raises(ValueError, match="rank"):
        ClassBalancedSampler(labels, 4, batch_size=8, num_replicas=2, rank=2)

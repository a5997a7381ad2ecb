"""`LabeledData.holdout`: whole held-out classes plus a stratified share of the other classes' items."""

import pytest

from finetuner.data import LabeledData

DATA = LabeledData([f"item{i}" for i in range(60)], [i % 6 for i in range(60)], list("abcdef"))


def test_parts_cover_the_data_once_and_classes_are_held_out_whole():
    train, items, classes = DATA.holdout(0.2, 0.34, seed=3)
    assert sorted(train + items + classes) == list(range(60))
    held = {DATA.labels[i] for i in classes}
    assert len(held) == 2 and all(DATA.labels[i] not in held for i in train + items)
    assert sorted(DATA.labels[i] for i in classes).count(min(held)) == 10  # every item of a held-out class
    assert len(items) == 8 and {DATA.labels[i] for i in items} == {DATA.labels[i] for i in train}


def test_same_seed_same_split_and_no_class_holdout_by_default():
    assert DATA.holdout(0.2, 0.34, seed=1) == DATA.holdout(0.2, 0.34, seed=1)
    assert DATA.holdout(0.2, 0.34, seed=1) != DATA.holdout(0.2, 0.34, seed=2)
    train, items, classes = DATA.holdout(0.25)
    assert classes == [] and len(items) == 15


def test_at_least_two_classes_held_out_and_two_kept():
    assert len({DATA.labels[i] for i in DATA.holdout(0.2, 0.01)[2]}) == 2
    with pytest.raises(ValueError, match="keep 2 to train on"):
        DATA.holdout(0.2, 0.9)

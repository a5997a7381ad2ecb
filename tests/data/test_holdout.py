"""hold_out: class-disjoint where it says so, seeded, and never trains on a validation item."""

import pytest

from finetuner.data import DataError, LabeledData, PairData, hold_out


def labelled(classes=10, per_class=10):
    names = [f"c{c}" for c in range(classes)]
    items = [f"{name}/{i}.png" for name in names for i in range(per_class)]
    return LabeledData(items, [i // per_class for i in range(classes * per_class)], names)


def test_held_out_classes_are_wholly_in_validation_and_absent_from_training():
    split = hold_out(labelled(), val_split=0.1, val_class_split=0.2, seed=3)
    train_classes = {split.train.classes[label] for label in split.train.labels}
    assert len(split.held_out_classes) == 2
    assert not train_classes & set(split.held_out_classes)
    held = [i for i in split.validation.items if i.split("/")[0] in split.held_out_classes]
    assert len(held) == 20  # every item of both held-out classes
    assert len(split.validation) == 20 + 8  # plus 10% of the 80 items of the training classes


def test_no_item_is_in_both_parts_and_none_is_lost():
    data = labelled()
    split = hold_out(data, val_split=0.1, val_class_split=0.2, seed=0)
    assert not set(split.train.items) & set(split.validation.items)
    assert sorted(split.train.items + split.validation.items) == sorted(data.items)


def test_split_is_seeded():
    first, again, other = (hold_out(labelled(), seed=s) for s in (1, 1, 2))
    assert first.validation.items == again.validation.items
    assert first.validation.items != other.validation.items


def test_fewer_than_four_classes_hold_out_items_only():
    split = hold_out(labelled(classes=3), val_split=0.2, val_class_split=0.5)
    assert split.held_out_classes == [] and len(split.validation) == 6


def test_two_classes_always_stay_for_training():
    split = hold_out(labelled(classes=4), val_split=0.0, val_class_split=0.9)
    assert len(split.held_out_classes) == 2


def test_pairs_are_split_by_the_items_fraction():
    pairs = PairData([f"q{i}" for i in range(20)], [f"d{i}" for i in range(20)])
    split = hold_out(pairs, val_split=0.25, val_class_split=0.5)
    assert len(split.train) == 15 and len(split.validation) == 5


def test_nothing_held_out_when_both_fractions_are_zero():
    split = hold_out(labelled(), val_split=0.0, val_class_split=0.0)
    assert split.validation is None and len(split.train) == 100


def test_too_little_data_is_a_clear_error():
    with pytest.raises(DataError, match="too little data"):
        hold_out(labelled(classes=2, per_class=2), val_split=0.1, val_class_split=0.0)


def test_bad_fraction_is_rejected():
    with pytest.raises(ValueError, match="val_split must be in"):
        hold_out(labelled(), val_split=1.5)

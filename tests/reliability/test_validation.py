"""Settings that cannot work fail at once with one line saying what to use instead."""

import pytest

import finetuner
from finetuner.data import ClassBalancedSampler, DataError, LabeledData
from finetuner.training import TrainConfig


@pytest.mark.parametrize("grad_clip", [0, -1.0, float("inf"), float("nan")])
def test_grad_clip_must_be_positive(grad_clip):
    with pytest.raises(ValueError, match="grad_clip must be (a positive|a finite) number"):
        TrainConfig(grad_clip=grad_clip)


@pytest.mark.parametrize("views", [0, -2, 1.5])
def test_cache_views_must_be_a_whole_number_of_at_least_one(arrays, tmp_path, views):
    with pytest.raises(ValueError, match="cache_views must be (a whole number|at least 1)"):
        finetuner.fit("test_cnn", arrays, pretrained=False, freeze=True, output_dim=8, epochs=1, batch_size=8,
                      cache_views=views, cache_dir=tmp_path)


def test_one_item_per_class_cannot_train_a_metric_loss():
    with pytest.raises(DataError, match="every one of the 5 classes has a single item.*task='classification'"):
        ClassBalancedSampler(list(range(5)), num_items_per_class=2, batch_size=4)


def test_one_item_per_class_fails_before_training(arrays, tmp_path):
    singletons = LabeledData(arrays.items[:6], list(range(6)), [str(c) for c in range(6)])
    with pytest.raises(DataError, match="single item"):
        finetuner.fit("test_cnn", singletons, pretrained=False, output_dim=8, epochs=1, batch_size=4, cache=False)

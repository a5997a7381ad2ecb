"""Hugging Face datasets: ClassLabel names, lazy image columns, DatasetDict splits, streaming refused."""

import datasets
import pytest
from PIL import Image

from finetuner.data import DataError, DatasetItems, load_data


def test_class_label_names_become_classes():
    label = datasets.ClassLabel(names=["neg", "pos"])
    features = datasets.Features({"sentence": datasets.Value("string"), "label": label})
    data = load_data(datasets.Dataset.from_dict({"sentence": ["bad", "good", "ok"], "label": [0, 1, 1]}, features))
    assert (data.items, data.labels, data.classes) == (["bad", "good", "ok"], [0, 1, 1], ["neg", "pos"])


def test_image_column_stays_lazy_and_decodes_to_pil():
    images = [Image.new("RGB", (6, 4), (i * 40, 0, 0)) for i in range(3)]
    dataset = datasets.Dataset.from_dict({"image": images, "label": ["a", "b", "a"]})
    dataset = dataset.cast_column("image", datasets.Image())
    data = load_data(dataset.select([2, 0, 1]))
    assert isinstance(data.items, DatasetItems) and data.labels == [0, 0, 1]
    first = data.subset([0]).items[0]
    assert isinstance(first, Image.Image) and first.getpixel((0, 0)) == (80, 0, 0)


def test_dataset_dict_uses_train_or_the_only_split():
    train = datasets.Dataset.from_dict({"anchor": ["q1"], "positive": ["d1"]})
    test = datasets.Dataset.from_dict({"anchor": ["q2"], "positive": ["d2"]})
    assert load_data(datasets.DatasetDict(train=train, test=test)).queries == ["q1"]
    assert load_data(datasets.DatasetDict(test=test)).queries == ["q2"]
    with pytest.raises(DataError, match=r"splits validation, test and no 'train' split: .*\['validation'\]"):
        load_data(datasets.DatasetDict(validation=train, test=test))


def test_streamed_dataset_is_refused():
    streamed = datasets.Dataset.from_dict({"text": ["a"], "label": ["x"]}).to_iterable_dataset()
    with pytest.raises(DataError, match="streamed.*without streaming=True"):
        load_data(streamed)

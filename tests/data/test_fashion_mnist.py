import numpy as np
import pytest

from finetuner.data import FASHION_MNIST_CLASSES, export_fashion_mnist, load_data, load_fashion_mnist


@pytest.mark.parametrize(("source", "size"), [("fashion-mnist", 2000), ("fashion-mnist:test", 1000)])
def test_embedded_splits(source, size):
    data = load_data(source)
    assert len(data) == size and data.classes == FASHION_MNIST_CLASSES
    assert data.items[0].shape == (28, 28) and data.items[0].dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [size // 10] * 10
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")


def test_export_writes_a_loadable_image_folder(tmp_path):
    root = export_fashion_mnist(tmp_path / "fm", "test", per_class=2)
    data = load_data(root)
    assert len(data) == 20 and "T-shirt_top" in data.classes and "Ankle boot" in data.classes
    original = load_fashion_mnist("test")
    first_bag = next(i for i, label in enumerate(original.labels) if original.classes[label] == "Bag")
    from PIL import Image

    exported = [path for path in data.items if f"test_{first_bag:05d}" in path]
    assert np.array_equal(np.asarray(Image.open(exported[0])), original.items[first_bag])

"""The embedded sets by name."""

from finetuner.data import FASHION_MNIST_CLASSES, load_data


def test_fashion_mnist_splits_and_fortunes():
    train, test = load_data("fashion-mnist"), load_data("Fashion-MNIST:test")
    assert (len(train), len(test)) == (2000, 1000)
    assert train.classes == FASHION_MNIST_CLASSES and train.items[0].shape == (28, 28)
    fortunes = load_data("fortunes", kind="labeled")
    assert len(fortunes) == 888 and fortunes.classes[0] == "computers"

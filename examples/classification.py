"""The torchvision transfer-learning recipe in one call: replace ResNet-18's `fc` with Linear(512, num_classes),
freeze everything else, train it with cross-entropy.

    python examples/classification.py   # needs resnet18-f37072fd.pth in ~/.cache/torch/hub/checkpoints/,
                                        # or pass pretrained=False to try it with random weights
"""

import sys

import finetuner

pretrained = "--random" not in sys.argv
run = finetuner.fit(
    "resnet18",
    train_data="fashion-mnist",  # 10% held out to pick the epoch
    test_data="fashion-mnist:test",  # scored before and after, never used for any choice
    task="classification",
    freeze=True,
    epochs=5,
    pretrained=pretrained,
)
test = run.metrics["test"]
print(f"accuracy: {test['before']['accuracy']:.3f} -> {test['after']['accuracy']:.3f}")
print(run.predict(finetuner.data.load_fashion_mnist("test").items[:5]))

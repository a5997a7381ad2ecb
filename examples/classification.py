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
    train_data="fashion-mnist",
    eval_data="fashion-mnist:test",
    task="classification",
    freeze=True,
    epochs=5,
    pretrained=pretrained,
)
print(f"accuracy: {run.metrics['before']['accuracy']:.3f} -> {run.metrics['after']['accuracy']:.3f}")
print(run.predict(finetuner.data.load_fashion_mnist("test").items[:5]))

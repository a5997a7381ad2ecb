"""Run by tests/export/test_matrix.py as a script: load exported files with the plain tools, never finetuner.

``python plain_loaders.py jobs.json`` installs an import blocker for ``finetuner`` (so any import of it fails), then
for each job writes the vectors (and a classifier's labels) the plain tool gives to ``job["out"]`` as JSON.
"""

import importlib.abc
import json
import sys


class _BlockFinetuner(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "finetuner" or name.startswith("finetuner."):
            raise ImportError(f"finetuner is blocked in this process ({name})")
        return None


sys.meta_path.insert(0, _BlockFinetuner())

import numpy as np  # noqa: E402
import torch  # noqa: E402


def onnx_card_code(job):
    """The model card's "ONNX Runtime" example, run once per item with the file and item names substituted."""
    vectors, labels = [], []
    for item in job["items"]:
        code = job["code"].replace('"model', json.dumps(job["path"])[:-1]).replace(job["item"], json.dumps(item))
        scope = {}
        exec(code, scope)  # the card's code, as a user would paste it
        vectors.append(scope["vectors"][0])
        labels += scope.get("labels", [])
    return np.stack(vectors), labels


def sentence_transformers(job):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(job["path"], device="cpu", trust_remote_code=True, local_files_only=True)
    return model.encode(job["items"]), []


def timm_folder(job):
    import timm
    from PIL import Image

    net = timm.create_model(f"local-dir:{job['path']}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    batch = torch.stack([transform(Image.open(item).convert("RGB")) for item in job["items"]])
    with torch.no_grad():
        if net.num_classes:  # a classifier: logits with label names, features before them
            logits = net(batch)
            features = net.forward_head(net.forward_features(batch), pre_logits=True)
            names = net.pretrained_cfg["label_names"]
            return torch.nn.functional.normalize(features, dim=1).numpy(), [names[i] for i in logits.argmax(1)]
        sys.path.insert(0, job["path"])
        from finetuner_head import FinetunerHead

        sys.modules.pop("finetuner_head")
        sys.path.pop(0)
        return FinetunerHead.load(job["path"])(net(batch)).numpy(), []


LOADERS = {"onnx": onnx_card_code, "onnx-int8": onnx_card_code, "sentence-transformers": sentence_transformers,
           "timm": timm_folder}

if __name__ == "__main__":
    for job in json.load(open(sys.argv[1])):
        vectors, labels = LOADERS[job["format"]](job)
        with open(job["out"], "w") as file:
            json.dump({"vectors": np.asarray(vectors, dtype=np.float64).tolist(), "labels": list(labels)}, file)

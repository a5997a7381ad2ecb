"""The export matrix: each default result of fit x each format it claims opens in the plain tool, without finetuner.

Every supported cell is exported, then loaded in ONE subprocess where importing finetuner fails
(`tests/export/plain_loaders.py`: onnxruntime running the model card's own "ONNX Runtime" code, sentence-transformers
with ``trust_remote_code=True``, timm with its own preprocessing plus ``finetuner_head.py``), and compared with
``model.encode`` (and ``model.predict`` for classifiers). The finetuner folder is loaded with ``finetuner.load`` in
the same way, in a plain subprocess. Tolerances (max abs difference of L2-normalised vectors unless said):

| format | tolerance |
|---|---|
| finetuner folder | 1e-6 |
| onnx | 1e-4 |
| onnx-int8 | cosine similarity to encode >= 0.9 per item |
| sentence-transformers | 1e-5 |
| timm | 1e-4 (timm's own resize and crop) |

A cell a model does not claim must raise a ValueError at export that names what would work.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import finetuner
from finetuner.card import model_card
from tests.export.conftest import TEXTS

FORMATS = ("finetuner", "onnx", "onnx-int8", "sentence-transformers", "timm")
TOLERANCE = {"finetuner": 1e-6, "onnx": 1e-4, "sentence-transformers": 1e-5, "timm": 1e-4}
CLASSES = ["bag", "boot", "shirt"]
# model -> (the formats it claims, for the others a pattern of the error that names what works)
CLAIMS = {
    "image-residual": ("finetuner", "onnx", "onnx-int8", "timm"),
    "image-residual-matryoshka": ("finetuner", "onnx", "onnx-int8", "timm"),
    "image-projection": ("finetuner", "onnx", "onnx-int8", "timm"),
    "image-linear": ("finetuner", "onnx", "onnx-int8", "timm"),
    "image-classifier": ("finetuner", "onnx", "onnx-int8", "timm"),
    "text-residual": ("finetuner", "onnx", "onnx-int8", "sentence-transformers"),
    "text-lora-merged": ("finetuner", "onnx", "onnx-int8", "sentence-transformers"),
    "clip": ("finetuner",),
}
ERRORS = {
    "sentence-transformers": r"needs a Hugging Face text encoder.*format='onnx'",
    "timm": r"needs a backbone timm can build.*format='onnx'",
    "onnx": r"needs an image or text model.*CLIP",
    "onnx-int8": r"needs an image or text model.*CLIP",
}


def _randomise(module):
    """Weights a few training steps would leave (the residual branch starts at zero; BatchNorm at the identity)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and "num_batches" not in name:
                variance = "running_var" in name
                tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.5 if variance else torch.randn_like(tensor) * 0.3)


def _build(name, hf_folder):
    image = dict(pretrained=False, output_dim=8)
    if name.startswith("image-") and name != "image-classifier":
        head = name.split("-")[1]
        model = finetuner.build_model("timm:test_resnet", head=head, **image)
        if name.endswith("matryoshka"):
            model.truncate_dim = 6
    elif name == "image-classifier":
        model = finetuner.build_model("timm:test_resnet", pretrained=False, task="classification", classes=CLASSES)
    elif name == "text-residual":
        model = finetuner.build_model(str(hf_folder), output_dim=8)
    elif name == "text-lora-merged":
        model = finetuner.build_model(str(hf_folder), output_dim=8, lora={"rank": 2})
        for parameter_name, p in model.backbone.named_parameters():
            if "lora_B" in parameter_name:  # a trained adapter: B is not zero any more
                p.data.uniform_(-0.5, 0.5)
    else:
        from finetuner.models.clip import TINY_CONFIG, build_clip

        torch.manual_seed(0)
        return finetuner.build_model(build_clip(TINY_CONFIG)).eval()
    if model.head is not None:
        _randomise(model.head)
    return model.eval()


@pytest.fixture(scope="module")
def png_items(tmp_path_factory):
    """Real image files (PNG, non-square, several sizes), as fit's example items would be."""
    from PIL import Image

    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for i, (h, w) in enumerate([(40, 30), (64, 48), (33, 50), (90, 90)]):
        smooth = np.kron(rng.integers(0, 255, (h // 4 + 1, w // 4 + 1, 3)), np.ones((4, 4, 1)))[:h, :w]
        Image.fromarray(smooth.astype(np.uint8)).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    return paths


@pytest.fixture(scope="module")
def matrix(hf_folder, png_items, tmp_path_factory):
    """Every cell exported: (model name, format) -> (model, path, items), or the error raised at export."""
    root = tmp_path_factory.mktemp("matrix")
    cells, errors = {}, {}
    for name, claimed in CLAIMS.items():
        model = _build(name, hf_folder)
        text = name.startswith("text")
        items = list(TEXTS) if text else png_items
        model.card_data.example_items = items[:2]  # what fit records: the export checks run on them by default
        for fmt in FORMATS:
            path = root / name / {"onnx": "m.onnx", "onnx-int8": "int8.onnx"}.get(fmt, fmt)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                if fmt == "finetuner":
                    model.save(path)
                else:
                    model.export(path, format=fmt)
            except ValueError as error:
                errors[name, fmt] = str(error)
                continue
            cells[name, fmt] = (model, path, items)
        claimed_paths = {fmt for fmt in FORMATS if (name, fmt) in cells}
        assert claimed_paths == set(claimed), (name, claimed_paths, {k: v for k, v in errors.items() if k[0] == name})
    return cells, errors, root


def _card_onnx_code(model):
    card = model_card(model)
    block = re.search(r"### ONNX Runtime[^\n]*\n\n```python\n(.*?)\n```", card, re.S).group(1)
    code = block.split("\n\n", 1)[1]  # after the export line
    assert "finetuner" not in code.replace('"finetuner.classes"', "")
    return code


def _loaded(matrix):
    """Run every plain-tool cell in one blocked subprocess, the finetuner folders in one plain subprocess."""
    cells, _, root = matrix
    jobs, folders = [], []
    for (name, fmt), (model, path, items) in cells.items():
        out = str(root / f"{name}-{fmt}.json")
        if fmt == "finetuner":
            classifier = model.task == "classification"
            folders.append({"path": str(path), "items": items, "out": out, "classifier": classifier})
            continue
        job = {"format": fmt, "path": str(path), "items": items, "out": out}
        if fmt.startswith("onnx"):
            job["code"] = _card_onnx_code(model)
            job["item"] = '"a query text"' if name.startswith("text") else '"query.jpg"'
            job["path"] = str(path)[: -len(".onnx")]  # the card's "model.onnx(.json)" -> "<path>.onnx(.json)"
        jobs.append(job)
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "", "HF_MODULES_CACHE": str(root / "hf")}
    script = Path(__file__).with_name("plain_loaders.py")
    done = subprocess.run([sys.executable, str(script), str(root / "jobs.json")], capture_output=True, text=True,
                          env=env, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    (root / "folders.json").write_text(json.dumps(folders))
    loader = (
        "import json, sys, finetuner\n"
        "for job in json.load(open(sys.argv[1])):\n"
        "    model = finetuner.load(job['path'])\n"
        "    labels = model.predict(job['items'], num_workers=0) if job['classifier'] else []\n"
        "    json.dump({'vectors': model.encode(job['items'], num_workers=0).tolist(), 'labels': labels},"
        " open(job['out'], 'w'))\n"
    )
    done = subprocess.run([sys.executable, "-c", loader, str(root / "folders.json")], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    return {key: json.loads((root / f"{key[0]}-{key[1]}.json").read_text()) for key in cells}


def test_every_claimed_cell_opens_in_the_plain_tool(matrix):
    cells, _, _ = matrix
    results = _loaded(matrix)
    for (name, fmt), (model, _, items) in cells.items():
        got = np.asarray(results[name, fmt]["vectors"], dtype=np.float32)
        expected = model.encode(items, num_workers=0)
        if fmt == "onnx-int8":
            similarity = np.sum(got * expected, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
            assert similarity.min() >= 0.9, (name, similarity)
        else:
            np.testing.assert_allclose(got, expected, atol=TOLERANCE[fmt], err_msg=f"{name} x {fmt}")
        if model.task == "classification" and fmt != "onnx-int8":
            assert results[name, fmt]["labels"] == model.predict(items, num_workers=0), (name, fmt)
        if model.truncate_dim:
            assert got.shape[1] == model.truncate_dim


UNCLAIMED = [(name, fmt) for name, claimed in CLAIMS.items() for fmt in FORMATS if fmt not in claimed]


@pytest.mark.parametrize(("name", "fmt"), UNCLAIMED)
def test_unclaimed_cells_raise_naming_what_works(matrix, name, fmt):
    _, errors, root = matrix
    assert re.search(ERRORS[fmt], errors[name, fmt]), errors[name, fmt]
    assert not any(p.name.startswith(fmt.replace("onnx-int8", "int8")) for p in (root / name).iterdir())


def test_sentence_transformers_needs_remote_code_only_for_non_dense_heads(matrix, hf_folder, tmp_path):
    cells, _, _ = matrix
    _, folder, _ = cells["text-residual", "sentence-transformers"]
    modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
    assert "finetuner_head.FinetunerHead" in modules and (folder / "finetuner_head.py").is_file()
    assert "trust_remote_code=True" in (folder / "README.md").read_text()
    linear = finetuner.build_model(str(hf_folder), output_dim=8, head="linear").eval()
    linear.truncate_dim = 4
    folder = linear.export(tmp_path / "st", format="sentence-transformers")
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", "Dense", "Dense", "Normalize"]  # the second Dense slices to 4
    assert "trust_remote_code" not in (folder / "README.md").read_text()


def test_int8_checks_the_real_items_the_model_carries(matrix, tmp_path):
    cells, _, _ = matrix
    model, _, items = cells["image-residual", "onnx-int8"]
    with pytest.raises(ValueError, match=r"on 2 real items.*min_similarity=1.01"):
        model.export(tmp_path / "int8.onnx", format="onnx-int8", min_similarity=1.01)
    model.card_data.example_items = [str(tmp_path / "gone.png")]  # moved away since fit: the example batch is used
    with pytest.raises(ValueError, match=r"random example batch"):
        model.export(tmp_path / "int8.onnx", format="onnx-int8", min_similarity=1.01)
    model.card_data.example_items = items[:2]


def test_onnx_classifier_carries_labels(matrix):
    from finetuner.export import OnnxEncoder

    cells, _, _ = matrix
    model, path, items = cells["image-classifier", "onnx"]
    encoder = OnnxEncoder(path)
    assert encoder.labels == CLASSES and encoder.predict(items) == model.predict(items, num_workers=0)

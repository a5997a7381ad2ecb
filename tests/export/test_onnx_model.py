"""The onnx and onnx-int8 formats: self-contained files whose OnnxEncoder.encode reproduces model.encode, also
in a process where PyTorch cannot be imported."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import finetuner
from finetuner.export import OnnxEncoder
from finetuner.export.onnx_preprocessing import ImageArrays
from tests.export.conftest import TEXTS

REPO = Path(__file__).resolve().parents[2]


def _encode_without_torch(path: Path, items: list) -> np.ndarray:
    """OnnxEncoder(path).encode(items) in a fresh interpreter where `import torch` fails."""
    script = (
        "import sys, json; sys.modules['torch'] = None\n"
        "from finetuner.export import OnnxEncoder\n"
        f"vectors = OnnxEncoder({str(path)!r}).encode(json.loads(sys.argv[1]))\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(json.dumps(vectors.tolist()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(items)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return np.asarray(json.loads(out.stdout.strip().splitlines()[-1]), dtype=np.float32)


def test_numpy_image_preprocessing_matches_the_torch_one(image_model, image_items):
    from finetuner.data.preprocessing import ImagePreprocessing

    for config in (
        image_model.preprocessing.to_config(),
        {"input_size": [3, 24, 40], "mean": [0.5] * 3, "std": [0.2] * 3, "interpolation": "bilinear", "crop_pct": 0.9},
        {"input_size": [1, 17, 17], "mean": [0.1], "std": [0.3], "interpolation": "bicubic", "crop_pct": 0.875},
    ):
        torch_prep = ImagePreprocessing.from_config({**config, "augment": None})
        expected = np.stack([torch_prep.load(item, train=False).numpy() for item in image_items])
        np.testing.assert_allclose(ImageArrays(config)(image_items), expected, atol=1e-6)


def test_image_model_round_trip_without_torch(image_model, image_items, tmp_path):
    path = image_model.export(tmp_path / "model.onnx")
    expected = image_model.encode(image_items, num_workers=0)
    encoder = OnnxEncoder(path)
    assert encoder.normalized and encoder.preprocessing["kind"] == "image"
    np.testing.assert_allclose(encoder.encode(image_items, batch_size=2), expected, atol=1e-4)
    paths = [str(item) for item in image_items[:2]]
    np.testing.assert_allclose(_encode_without_torch(path, paths), expected[:2], atol=1e-4)
    sidecar = json.loads((tmp_path / "model.onnx.json").read_text())
    assert sidecar["preprocessing"] == encoder.preprocessing and sidecar["normalized"] is True


def test_text_model_round_trip_without_torch(text_model, tmp_path):
    path = text_model.export(tmp_path / "text.onnx")
    expected = text_model.encode(TEXTS, num_workers=0)
    assert not list(tmp_path.glob("tokenizer*")), "the tokenizer travels inside the .onnx file"
    np.testing.assert_allclose(OnnxEncoder(path).encode(TEXTS, batch_size=3), expected, atol=1e-4)
    np.testing.assert_allclose(_encode_without_torch(path, TEXTS), expected, atol=1e-4)


def test_text_truncation_travels_with_the_file(hf_folder, tmp_path):
    model = finetuner.build_model(str(hf_folder), max_length=5)
    long_texts = ["the cat sat on the mat and the dog sat on the cat", "hello"]
    path = model.export(tmp_path / "short.onnx")
    np.testing.assert_allclose(OnnxEncoder(path).encode(long_texts), model.encode(long_texts, num_workers=0), atol=1e-4)


def test_normalize_false_keeps_raw_outputs(image_model, image_items, tmp_path):
    path = image_model.export(tmp_path / "raw.onnx", normalize=False)
    raw = OnnxEncoder(path).encode(image_items)
    np.testing.assert_allclose(raw, image_model.encode(image_items, normalize=False, num_workers=0), atol=1e-4)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_classifier_exports_the_vectors_encode_gives(tmp_path, image_items):
    model = finetuner.build_model("test_cnn", pretrained=False, task="classification", classes=["a", "b", "c"])
    path = model.export(tmp_path / "clf.onnx")
    expected = model.encode(image_items, num_workers=0)
    np.testing.assert_allclose(OnnxEncoder(path).encode(image_items), expected, atol=1e-4)
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata["finetuner.task"] == "classification"


def test_int8_file_is_quantised_and_close(image_model, image_items, tmp_path):
    fp32 = image_model.export(tmp_path / "fp32.onnx")
    int8 = image_model.export(tmp_path / "int8.onnx", format="onnx-int8", quantization="dynamic")
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}, ops
    encoder = OnnxEncoder(int8)
    assert encoder.metadata["finetuner.quantization"].startswith("dynamic int8")
    vectors, reference = encoder.encode(image_items), OnnxEncoder(fp32).encode(image_items)
    assert np.sum(vectors * reference, axis=1).min() > 0.9
    assert (tmp_path / "int8.onnx.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == [
        "fp32.onnx", "fp32.onnx.json", "int8.onnx", "int8.onnx.json"
    ]


def test_a_cnn_is_quantised_statically_calibrated_on_its_items(image_model, image_items, tmp_path):
    fp32 = image_model.export(tmp_path / "fp32.onnx")
    items = image_items * 4  # more than one calibration batch, the last one short
    int8 = image_model.export(tmp_path / "int8.onnx", format="onnx-int8", check_items=items)  # quantization auto
    ops = [node.op_type for node in onnx.load(str(int8)).graph.node]
    assert "Conv" in ops and "QuantizeLinear" in ops and "DequantizeLinear" in ops  # QDQ around the convolutions
    assert not {"ConvInteger", "DynamicQuantizeLinear"} & set(ops)
    metadata = OnnxEncoder(int8).metadata["finetuner.quantization"]
    assert metadata.startswith(f"static int8, QDQ, calibrated on {len(items)} items")
    vectors, reference = OnnxEncoder(int8).encode(image_items), OnnxEncoder(fp32).encode(image_items)
    assert np.sum(vectors * reference, axis=1).min() >= 0.99  # the tolerance: cosine 0.99 per item, unit vectors
    assert not np.allclose(vectors, reference, atol=1e-6)  # it is quantised: not the float32 vectors themselves


def test_static_int8_keeps_the_shape_arithmetic_float(tmp_path):
    """timm's "same" padding computes its pads from the input's shape inside the graph. Quantised, a pad of 2 came
    back as 1.9995 and was cast to 1 (EfficientNet-Lite0's feature maps shrank at each strided convolution): the pads
    must come from no QuantizeLinear, while the convolutions still run on int8 inputs."""
    from finetuner.data import load_fashion_mnist

    model = finetuner.build_model("test_cnn_same", pretrained=False, output_dim=16, head="projection").eval()
    fp32 = model.export(tmp_path / "fp32.onnx")
    int8 = model.export(tmp_path / "int8.onnx", format="onnx-int8", check_items=load_fashion_mnist("train").items[:40])
    graph = onnx.load(str(int8)).graph
    producer = {tensor: node for node in graph.node for tensor in node.output}

    def computed_from(tensor: str) -> set[str]:  # the op types a tensor is computed from, back to the Shape nodes
        node = producer.get(tensor)
        if node is None:
            return set()
        inputs = [] if node.op_type == "Shape" else node.input
        return {node.op_type}.union(*(computed_from(name) for name in inputs))

    pads = [computed_from(node.input[1]) for node in graph.node if node.op_type == "Pad"]
    assert pads and all("Shape" in ops and "QuantizeLinear" not in ops for ops in pads), pads
    assert all(producer[node.input[0]].op_type == "DequantizeLinear" for node in graph.node if node.op_type == "Conv")
    test_items = load_fashion_mnist("test").items[:40]  # items it was not calibrated on
    vectors, reference = OnnxEncoder(int8).encode(test_items), OnnxEncoder(fp32).encode(test_items)
    assert np.sum(vectors * reference, axis=1).min() >= 0.99


def test_static_quantization_needs_images(text_model, tmp_path):
    with pytest.raises(ValueError, match="quantization='static' calibrates on images"):
        text_model.export(tmp_path / "int8.onnx", format="onnx-int8", quantization="static")
    with pytest.raises(ValueError, match="quantization must be one of"):
        text_model.export(tmp_path / "int8.onnx", format="onnx-int8", quantization="qat")


@pytest.mark.parametrize("real_items", [False, True])
def test_int8_refuses_a_file_too_far_from_float32(image_model, image_items, tmp_path, real_items):
    items = image_items if real_items else None
    with pytest.raises(ValueError, match="min_similarity=1.01.*nothing was written"):
        image_model.export(tmp_path / "int8.onnx", format="onnx-int8", min_similarity=1.01, check_items=items)
    assert not list(tmp_path.iterdir())


def test_clear_errors(image_model, tmp_path):
    with pytest.raises(ValueError, match="Unknown export format 'keras'.*'onnx'"):
        image_model.export(tmp_path / "m", format="keras")
    bare = finetuner.EmbeddingModel(image_model.backbone, image_model.pool, None, spec=image_model.spec)
    with pytest.raises(ValueError, match="image or text model"):
        bare.export(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="carries no preprocessing"):
        import torch

        from finetuner.export import export_onnx

        OnnxEncoder(export_onnx(torch.nn.Linear(4, 2), torch.randn(2, 4), tmp_path / "plain.onnx")).encode([1])

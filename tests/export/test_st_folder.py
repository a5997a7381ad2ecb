"""The sentence-transformers format: folders that plain sentence-transformers loads (finetuner blocked from
importing) and that encode the same normalised vectors as model.encode."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import finetuner
from tests.export.conftest import TEXTS


def _encode_with_plain_sentence_transformers(folder, texts) -> np.ndarray:
    """SentenceTransformer(folder).encode(texts) in a fresh interpreter where `import finetuner` fails."""
    script = (
        "import sys, json; sys.modules['finetuner'] = None\n"
        "from sentence_transformers import SentenceTransformer\n"
        f"model = SentenceTransformer({str(folder)!r}, device='cpu')\n"
        "print(json.dumps(model.encode(json.loads(sys.argv[1])).tolist()))\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(texts)], capture_output=True, text=True, check=True, env=env
    )
    return np.asarray(json.loads(out.stdout.strip().splitlines()[-1]), dtype=np.float32)


def _modules(folder) -> list[str]:
    return [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]


def test_linear_head_round_trip_without_finetuner(text_model, tmp_path):
    from transformers import AutoModel

    folder = text_model.export(tmp_path / "st", format="sentence-transformers")
    assert _modules(folder) == ["Transformer", "Pooling", "Dense", "Normalize"]
    got = _encode_with_plain_sentence_transformers(folder, TEXTS)
    np.testing.assert_allclose(got, text_model.encode(TEXTS, num_workers=0), atol=1e-5)
    AutoModel.from_pretrained(str(folder), local_files_only=True)  # the transformer loads on its own
    card = (folder / "README.md").read_text()
    assert "SentenceTransformer(" in card and "library_name: sentence-transformers" in card


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_projection_head_with_batchnorm_and_cut_layers(hf_folder, tmp_path, pooling):
    from sentence_transformers import SentenceTransformer

    model = finetuner.build_model(
        str(hf_folder), output_dim=8, head="projection", layer_name="transformer.encoder.layer.1", pooling=pooling,
        max_length=12,
    )
    for norm in (model.head.layers[1], model.head.layers[4]):  # statistics a few training steps would leave
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.2, 3), norm.weight.data.uniform_(0.5, 2)
    model.eval()
    folder = model.export(tmp_path / "st", format="sentence-transformers")
    assert _modules(folder) == ["Transformer", "Pooling", "Dense", "Dense", "Dense", "Normalize"]
    loaded = SentenceTransformer(str(folder), device="cpu")
    assert loaded.max_seq_length == 12 and loaded[0].auto_model.config.num_hidden_layers == 2
    long_texts = [*TEXTS, "the cat sat on the mat " * 5]
    np.testing.assert_allclose(loaded.encode(long_texts), model.encode(long_texts, num_workers=0), atol=1e-5)


def test_no_head_and_lora_merged(hf_folder, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = finetuner.build_model(str(hf_folder), lora={"rank": 2})
    for name, p in model.backbone.named_parameters():  # a trained adapter: B is not zero any more
        if "lora_B" in name:
            p.data.uniform_(-0.5, 0.5)
    folder = model.export(tmp_path / "st", format="sentence-transformers")
    assert _modules(folder) == ["Transformer", "Pooling", "Normalize"]
    expected = model.encode(TEXTS, num_workers=0)
    np.testing.assert_allclose(SentenceTransformer(str(folder), device="cpu").encode(TEXTS), expected, atol=1e-5)


class _ResidualHead(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(x)

    def config(self) -> dict:
        return {"type": "ResidualHead", "dim": self.linear.in_features}


def test_clear_errors_and_nothing_written(text_model, image_model, tmp_path):
    residual = copy.deepcopy(text_model)
    residual.head = _ResidualHead(32)
    with pytest.raises(ValueError, match="ResidualHead head is not a plain chain.*format='onnx'"):
        residual.export(tmp_path / "st", format="sentence-transformers")
    layer_norm = copy.deepcopy(text_model)
    layer_norm.head = nn.Sequential(nn.Linear(32, 8), nn.LayerNorm(8))
    with pytest.raises(ValueError, match="LayerNorm.*can only hold"):
        layer_norm.export(tmp_path / "st", format="sentence-transformers")
    with pytest.raises(ValueError, match="needs a Hugging Face text encoder.*test_cnn|needs a Hugging Face text"):
        image_model.export(tmp_path / "st", format="sentence-transformers")
    assert not (tmp_path / "st").exists()

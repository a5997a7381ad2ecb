"""The ``onnx-int8`` export format: the ``onnx`` file, dynamically quantised to int8 by onnxruntime's own tooling.

Dynamic quantisation stores the weights of MatMul/Gemm/Conv/attention nodes as int8 (about 4x smaller) and
quantises activations on the fly, so it needs no calibration data. Vectors move a little: the export checks the
quantised graph against the float32 one on the example batch (cosine similarity per row), and
``benchmarks/bench_onnx_int8.py`` measures speed and Recall@1 on real data. Measured there (EfficientNet-Lite0,
2 CPU cores): files 3.7x smaller, Recall@1 0.753 -> 0.737, but 7x *slower*: onnxruntime's ConvInteger kernels
are slow on CPU, so for CNNs int8 buys size, not speed; transformers (MatMul) are its better case.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finetuner.core import staging_folder
from finetuner.export.checks import check_items as real_items
from finetuner.export.checks import cosine_similarities
from finetuner.export.onnx_encoder import OnnxEncoder
from finetuner.export.onnx_model import export_onnx_model
from finetuner.export.registry import register_exporter

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel


@register_exporter("onnx-int8")
def export_onnx_int8(
    model: EmbeddingModel,
    path: Path,
    *,
    normalize: bool = True,
    opset: int | None = None,
    per_channel: bool = False,
    min_similarity: float = 0.9,
    check_items: Sequence[Any] | str | Path | None = None,
) -> Path:
    """Write ``model`` as a dynamically quantised (int8 weights) ONNX file, with its preprocessing like ``onnx``.

    Args:
        model: an image or text `EmbeddingModel`.
        path: the ``.onnx`` file; ``<path>.json`` (the preprocessing) is written beside it.
        normalize: end the graph with L2 normalisation.
        opset: ONNX opset of the float graph; ``None`` for the exporter's default.
        per_channel: one scale per output channel (more accurate for convolutions, a little slower).
        min_similarity: the lowest cosine similarity between a quantised and a float32 vector the export accepts.
        check_items: raw items (images, texts, or a folder of images) to compare the two files on; default: the
            model's example items (``card_data.example_items``, training items ``fit`` records), else its random
            example batch (random pixels drift less than real images do: pass real items then).

    Returns:
        ``path``.

    Raises:
        ValueError: quantisation moved some check vector below ``min_similarity``: nothing is written then.

    Example:
        >>> model.export("out/model-int8.onnx", format="onnx-int8")  # doctest: +SKIP
        >>> OnnxEncoder("out/model-int8.onnx").encode(["shoe.png"])  # doctest: +SKIP
    """
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    items = real_items(model, check_items)
    with staging_folder(path) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx_model(model, fp32, normalize=normalize, opset=opset, check_items=items or None)
        prepared, int8 = Path(tmp) / "prepared.onnx", Path(tmp) / path.name
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # it trips on dynamic axes
        quantize_dynamic(str(prepared), str(int8), per_channel=per_channel, weight_type=QuantType.QInt8)
        _copy_metadata(fp32, int8, {"finetuner.quantization": "dynamic int8 (onnxruntime.quantization)"})
        _check(fp32, int8, model, min_similarity, path, items)
        shutil.move(str(int8), path)
        shutil.move(str(fp32.with_name(fp32.name + ".json")), path.with_name(path.name + ".json"))
    return path


def _copy_metadata(source: Path, target: Path, extra: dict[str, str]) -> None:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    model = onnx.load(str(target))
    onnx.helper.set_model_props(model, {**props, **extra})
    onnx.save_model(model, str(target))


def _check(
    fp32: Path, int8: Path, model: EmbeddingModel, min_similarity: float, path: Path, items: Sequence[Any]
) -> None:
    if items:
        expected, got = OnnxEncoder(fp32).encode(items), OnnxEncoder(int8).encode(items)
    else:
        batch = model.example_input()
        batch = {k: v.numpy() for k, v in batch.items()} if isinstance(batch, dict) else batch.numpy()
        expected, got = OnnxEncoder(fp32)(batch), OnnxEncoder(int8)(batch)
    similarity = cosine_similarities(expected, got)
    if not similarity.min() >= min_similarity:
        checked = f"{len(items)} real items" if items else "the model's random example batch"
        raise ValueError(
            f"int8 quantisation moves the vectors too far on {checked}: cosine similarity to float32 is "
            f"{similarity.min():.3f} at worst, {float(np.median(similarity)):.3f} in the median "
            f"(min_similarity={min_similarity}); nothing was written to {path}. Export format='onnx' (float32), "
            "or try per_channel=True."
        )

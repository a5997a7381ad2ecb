"""The ``onnx-int8`` export format: the ``onnx`` file, quantised to int8 by onnxruntime's own tooling, statically
for convolutional models and dynamically for the rest (transformers), chosen per model.

*Static* quantisation (QDQ format, per-channel weights) calibrates the activations' ranges on real items (the
user's own: ``check_items``, else the training items the model carries) so that onnxruntime runs integer
convolutions end to end (``QLinearConv``). *Dynamic* quantisation stores the weights of MatMul/Gemm/attention nodes
as int8 and quantises activations on the fly, with no calibration; on convolutions it is slow (``ConvInteger``:
7x slower than float32 for EfficientNet-Lite0 on 2 CPU cores), which is why a graph with a ``Conv`` is quantised
statically. Vectors move a little: the export checks the quantised graph against the float32 one on the items
(cosine similarity per row), and ``benchmarks/bench_onnx_int8.py`` measures speed and Recall@1 on real data.
"""

from __future__ import annotations

import contextlib
import io
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
from finetuner.export.onnx_preprocessing import arrays_for
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
    per_channel: bool | None = None,
    min_similarity: float = 0.9,
    check_items: Sequence[Any] | str | Path | None = None,
    quantization: str = "auto",
) -> Path:
    """Write ``model`` as an int8-quantised ONNX file, with its preprocessing like ``onnx``.

    Args:
        model: an image or text `EmbeddingModel`.
        path: the ``.onnx`` file; ``<path>.json`` (the preprocessing) is written beside it.
        normalize: end the graph with L2 normalisation.
        opset: ONNX opset of the float graph; ``None`` for the exporter's default.
        per_channel: one scale per output channel (more accurate for convolutions, a little slower); None: on for
            static quantisation, off for dynamic.
        min_similarity: the lowest cosine similarity between a quantised and a float32 vector the export accepts.
        check_items: raw items (images, texts, or a folder of images) to calibrate on (static) and to compare the
            two files on; default: the model's example items (``card_data.example_items``, training items ``fit``
            records), else its random example batch (random pixels drift less than real images do, and calibrate
            worse: pass a few hundred of your own items then).
        quantization: ``"auto"`` (``"static"`` when the graph has a convolution, else ``"dynamic"``), ``"static"``
            (image models only: calibration needs pixels) or ``"dynamic"``. The file's metadata records it
            (``finetuner.quantization``).

    Returns:
        ``path``.

    Raises:
        ValueError: quantisation moved some check vector below ``min_similarity`` (nothing is written then), an
            unknown ``quantization``, or ``"static"`` for a text model.

    Example:
        >>> model.export("out/model-int8.onnx", format="onnx-int8")  # doctest: +SKIP
        >>> OnnxEncoder("out/model-int8.onnx").encode(["shoe.png"])  # doctest: +SKIP
    """
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {list(QUANTIZATIONS)}, got {quantization!r}.")
    text = getattr(model.preprocessing, "kind", None) == "text"
    if quantization == "static" and text:
        raise ValueError("quantization='static' calibrates on images; quantise a text model with 'dynamic' or 'auto'.")
    items = real_items(model, check_items)
    with staging_folder(path) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx_model(model, fp32, normalize=normalize, opset=opset, check_items=items or None)
        prepared, int8 = Path(tmp) / "prepared.onnx", Path(tmp) / path.name
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # it trips on dynamic axes
        if quantization == "auto":
            quantization = "static" if not text and _has_convolutions(fp32) else "dynamic"
        if quantization == "static":
            _quantize_static(prepared, int8, fp32, model, items, per_channel is not False)
            what = f"static int8, QDQ, calibrated on {len(items) or 'the random example'} items"
        else:
            quantize_dynamic(str(prepared), str(int8), per_channel=bool(per_channel), weight_type=QuantType.QInt8)
            what = "dynamic int8"
        _copy_metadata(fp32, int8, {"finetuner.quantization": f"{what} (onnxruntime.quantization)"})
        _check(fp32, int8, model, min_similarity, path, items)
        shutil.move(str(int8), path)
        shutil.move(str(fp32.with_name(fp32.name + ".json")), path.with_name(path.name + ".json"))
    return path


QUANTIZATIONS = ("auto", "static", "dynamic")
CALIBRATION_BATCH = 16


def _graph(file: Path) -> Any:
    import onnx

    return onnx.load(str(file), load_external_data=False).graph


def _has_convolutions(file: Path) -> bool:
    return any(node.op_type == "Conv" for node in _graph(file).node)


def _shape_arithmetic(file: Path) -> list[str]:
    """The nodes that compute on tensor shapes only: ``Shape`` and every node whose inputs all come from such nodes or
    are constants (e.g. the pads of timm's TensorFlow-style "same" padding, from the input's height and width).

    Quantised, those numbers round (a pad of 2 came back as 1.9995, cast to 1): EfficientNet-Lite0's feature maps
    shrank by a pixel at each strided convolution, and its vectors moved to cosine 0.93 (mean) from float32
    instead of 0.98 with them in float.
    """
    graph = _graph(file)
    constants = {tensor.name for tensor in graph.initializer}
    shapes: set[str] = set()
    names = []
    for node in graph.node:  # in topological order
        inputs = [name for name in node.input if name and name not in constants]
        if node.op_type == "Shape" or all(name in shapes for name in inputs):
            shapes.update(node.output)
            names.append(node.name)
    return names


def _quantize_static(
    prepared: Path, int8: Path, fp32: Path, model: EmbeddingModel, items: Sequence[Any], per_channel: bool
) -> None:
    """QDQ int8 with activation ranges calibrated on ``items`` run through the file's own preprocessing (the model's
    random example batch without items): the 0.001-99.999 percentiles of each activation's histogram, which kept
    EfficientNet-Lite0's vectors closer to float32 than min-max (mean cosine 0.981 vs 0.977 on Fashion-MNIST
    training images); min-max where a histogram cannot be built (an activation with almost no range, e.g. on a
    batch of two). The graph's shape arithmetic stays float (`_shape_arithmetic`)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if items:
        inputs = arrays_for(OnnxEncoder(fp32).preprocessing)(list(items))
    else:
        inputs = model.example_input().numpy()
    size = min(CALIBRATION_BATCH, len(inputs))  # batches of one size (the histograms stack them): the last overlaps
    batches = [inputs[min(i, len(inputs) - size) :][:size] for i in range(0, len(inputs), size)]
    name = _graph(prepared).input[0].name

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)  # a new reader per calibration: each reads every batch

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {name: batch}

    for method in (CalibrationMethod.Percentile, CalibrationMethod.MinMax):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
                quantize_static(
                    str(prepared),
                    str(int8),
                    Batches(),
                    quant_format=QuantFormat.QDQ,
                    calibrate_method=method,
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=_shape_arithmetic(prepared),
                )
            return
        except ValueError:  # no histogram of an activation with (almost) no range: min-max then
            if method == CalibrationMethod.MinMax:
                raise


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

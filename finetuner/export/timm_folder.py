"""The ``timm`` export format: a folder ``timm.create_model("local-dir:" + folder, pretrained=True)`` loads.

timm's own ``save_for_hf`` writes ``config.json`` (architecture, ``num_classes=0``, ``pretrained_cfg`` with this
model's preprocessing) and ``model.safetensors`` with timm's native key names, so timm loads it strictly (no
missing or unexpected keys) and its pooled features are this model's features. The head ships beside it as
``head.safetensors`` + ``head.json``, described in the folder's ``README.md``. Backbones built from timm export
as they are; torchvision backbones export when timm has the same architecture under the same parameter names
(the ResNets); anything else, and a layer cut timm cannot rebuild, raises a `ValueError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from finetuner.card import model_card
from finetuner.core.files import atomic_folder
from finetuner.export.registry import register_exporter

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"


@register_exporter("timm")
def export_timm(model: EmbeddingModel, path: Path, *, atol: float = 1e-5) -> Path:
    """Write an image model's backbone as a timm folder, its head beside it, checked by loading it back with timm.

    Args:
        model: an `EmbeddingModel` whose backbone timm can build (a timm model, or a torchvision ResNet).
        path: the folder to write (replaced atomically).
        atol: the largest difference between timm's features and this model's the check accepts.

    Returns:
        ``path``.

    Raises:
        ValueError: the backbone is not a timm architecture, its weights do not map onto timm's exactly, or the
            layer cut leaves a network timm cannot rebuild.

    Example:
        >>> model.export("out/timm", format="timm")  # doctest: +SKIP
        >>> timm.create_model("local-dir:out/timm", pretrained=True)  # doctest: +SKIP
    """
    import timm
    from timm.models import save_for_hf

    architecture, kwargs = _timm_architecture(model.spec.get("backbone", {}))
    net = timm.create_model(architecture, pretrained=False, num_classes=0, **kwargs).eval()
    net.load_state_dict(_timm_state_dict(model, net, architecture), strict=True)
    example = model.example_input()
    _check_features(model, net, example, atol, architecture, path)
    with atomic_folder(path) as staging:
        save_for_hf(net, str(staging), safe_serialization=True, data_config=_data_config(model.preprocessing))
        _save_head(model, staging)
        reloaded = timm.create_model(f"local-dir:{staging}", pretrained=True).eval()
        _check_features(model, reloaded, example, atol, architecture, path)
        (staging / "README.md").write_text(model_card(model, format="timm", extra=_head_section(model)))
    return path


def _timm_architecture(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    import timm

    source, name = spec.get("source"), spec.get("name")
    if source == "timm":
        return name, dict(spec.get("kwargs", {}))
    if source == "torchvision" and name and timm.is_model(name):
        return name, dict(spec.get("kwargs", {}))
    if source == "torchvision":
        detail = f"torchvision {name!r} has no timm architecture of that name"
    else:
        detail = f"the backbone comes from {source!r}"
    raise ValueError(
        f"The timm format needs a backbone timm can build; {detail}. Build the model from a timm name "
        "(finetuner.fit('timm:<name>', ...)), or use format='onnx'."
    )


def _timm_state_dict(model: EmbeddingModel, net: nn.Module, architecture: str) -> dict[str, torch.Tensor]:
    """The backbone's weights under timm's names: chop wrappers' prefixes and the dropped classifier removed."""
    state = model.backbone.state_dict()
    if state and all(key.startswith("model.") for key in state):  # an EarlyExit chop keeps the whole model
        state = {key[len("model.") :]: value for key, value in state.items()}
    expected = net.state_dict()
    classifiers = net.pretrained_cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    unexpected = [k for k in state if k not in expected and not any(k.startswith(f"{c}.") for c in classifiers)]
    missing = [k for k in expected if k not in state]
    layer = model.spec.get("layer_name")
    if unexpected:
        raise ValueError(
            f"This backbone's weights do not map onto timm's {architecture} ({_first(unexpected)} have no timm "
            "counterpart): the torchvision and timm versions of this architecture differ. Use format='onnx'."
        )
    if missing:
        raise ValueError(
            f"timm's {architecture} needs weights this backbone does not have ({_first(missing)}): "
            + (f"the layer cut at {layer!r} removed them, and " if layer else "")
            + "timm cannot rebuild a shortened network. Export the full backbone (no layer_name), or use "
            "format='onnx'."
        )
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise ValueError(
                f"{key} is {tuple(state[key].shape)} here but {tuple(value.shape)} in timm's {architecture}; "
                "use format='onnx'."
            )
    return {key: state[key] for key in expected}


def _check_features(
    model: EmbeddingModel, net: nn.Module, example: torch.Tensor, atol: float, architecture: str, path: Path
) -> None:
    from finetuner.export.onnx import export_ready

    with torch.no_grad(), export_ready(model) as ready:
        expected = ready.features(example)
        got = net(example)
    diff = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
    if not diff <= atol:
        layer = model.spec.get("layer_name")
        raise ValueError(
            f"timm's {architecture} gives features {tuple(got.shape)} that differ from this backbone's "
            f"{tuple(expected.shape)} by {diff:.3g} (atol={atol}): the cut at {layer!r} or its pooling is not "
            f"timm's pooled output. Nothing was written to {path}; use format='onnx', or cut where the "
            "classifier starts (the default layer)."
        )


def _data_config(preprocessing: Any) -> dict[str, Any]:
    config = preprocessing.to_config()
    keys = ("input_size", "mean", "std", "interpolation", "crop_pct")
    data = {key: tuple(config[key]) if isinstance(config[key], list) else config[key] for key in keys}
    return {**data, "crop_mode": "center"}  # ImagePreprocessing always center-crops


def _save_head(model: EmbeddingModel, folder: Path) -> None:
    from safetensors.torch import save_file

    head = model.head
    description = {
        "task": model.task,
        "head": head.to_config() if head is not None else None,
        "classes": model.classes,
        "normalize": model.task != "classification",
    }
    (folder / HEAD_CONFIG).write_text(json.dumps(description, indent=2))
    if head is not None:
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / HEAD_WEIGHTS))


def _head_section(model: EmbeddingModel) -> str:
    if model.head is None:
        return "## Head\n\nNone: the embeddings are timm's pooled features, L2-normalised."
    shapes = "\n".join(f"    {key}: {tuple(value.shape)}" for key, value in model.head.state_dict().items())
    if model.task == "classification":
        use = "logits = head(features)"
    else:
        use = "embeddings = torch.nn.functional.normalize(head(features), dim=1)"
    return (
        "## Head\n\n"
        f"The backbone in `model.safetensors` gives timm's pooled features; the head in `{HEAD_WEIGHTS}` (described "
        f"by `{HEAD_CONFIG}`) turns them into {'logits' if model.task == 'classification' else 'the embeddings'}:\n\n"
        "```python\nimport json, timm, torch\nfrom safetensors.torch import load_file\n"
        "from finetuner.tailor import head_from_config   # or rebuild the layers below in plain PyTorch\n\n"
        'backbone = timm.create_model("local-dir:path/to/this/folder", pretrained=True).eval()\n'
        'head = head_from_config(json.load(open("path/to/this/folder/head.json"))["head"]).eval()\n'
        'head.load_state_dict(load_file("path/to/this/folder/head.safetensors"))\n'
        f"features = backbone(images)                    # preprocessed as timm.data.resolve_data_config says\n{use}\n"
        f"```\n\nHead tensors (`{type(model.head).__name__}`, eval mode):\n\n```\n{shapes}\n```"
    )


def _first(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")

"""The ``timm`` export format: a folder ``timm.create_model("local-dir:" + folder, pretrained=True)`` loads.

timm's own ``save_for_hf`` writes ``config.json`` (architecture, ``num_classes=0``, ``pretrained_cfg`` with this
model's preprocessing) and ``model.safetensors`` with timm's native key names, so timm loads it strictly (no
missing or unexpected keys) and its pooled features are this model's features. An embedding model's head ships
beside it as ``finetuner_head.py`` (plain PyTorch) + ``head.json`` + ``head.safetensors``, with the model's
``truncate_dim``; a classifier's head *is* timm's classifier (``num_classes`` and ``label_names`` in the config).
The folder's ``README.md`` writes the head's formula out. Backbones built from timm export
as they are; torchvision backbones export when timm has the same architecture under the same parameter names
(the ResNets); anything else, and a layer cut timm cannot rebuild, raises a `ValueError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from finetuner.card import head_formula, model_card
from finetuner.core.files import atomic_folder
from finetuner.export.checks import check_items as real_items
from finetuner.export.checks import max_difference
from finetuner.export.head_file import copy_head_module, head_module, standalone_head
from finetuner.export.registry import register_exporter

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"
HEAD_FILE = "finetuner_head.py"


@register_exporter("timm")
def export_timm(
    model: EmbeddingModel, path: Path, *, atol: float = 1e-5, check_items: Sequence[Any] | str | Path | None = None
) -> Path:
    """Write an image model as a timm folder, its head beside it (or inside, for a classifier), checked by loading it
    back with timm.

    Args:
        model: an `EmbeddingModel` whose backbone timm can build (a timm model, or a torchvision ResNet).
        path: the folder to write (replaced atomically).
        atol: the largest difference from this model the check accepts (features, logits, embeddings).
        check_items: real images (or a folder of them) the reloaded folder must embed as ``model.encode`` does;
            default: the model's example items (``card_data.example_items``).

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
    classifier = model.task == "classification"
    config: dict[str, Any] = {}
    if classifier:
        net = _with_classifier(model, net, architecture, kwargs)
        config["label_names"] = list(model.classes)
    head = None if classifier else standalone_head(model)
    example = model.example_input()
    _check(model, net, example, atol, architecture, path)
    items = real_items(model, check_items)
    with atomic_folder(path) as staging:
        save_for_hf(
            net, str(staging), model_config=config, safe_serialization=True,
            data_config=_data_config(model.preprocessing),
        )
        if head is not None:
            head.save(str(staging))
            copy_head_module(staging)
        reloaded = timm.create_model(f"local-dir:{staging}", pretrained=True).eval()
        _check(model, reloaded, example, atol, architecture, path)
        if items and head is not None:
            _check_items(model, reloaded, head_module().FinetunerHead.load(str(staging)), items, atol, path)
        (staging / "README.md").write_text(model_card(model, format="timm", extra=_head_section(model)))
    return path


def _with_classifier(model: EmbeddingModel, net: nn.Module, architecture: str, kwargs: dict[str, Any]) -> nn.Module:
    """timm's network with ``num_classes`` outputs whose classifier holds the model's ClassificationHead."""
    import timm

    state = net.state_dict()
    net = timm.create_model(architecture, pretrained=False, num_classes=len(model.classes), **kwargs).eval()
    linear = net.get_classifier()
    head = model.head.state_dict()
    if not isinstance(linear, nn.Linear) or any(linear.state_dict()[k].shape != v.shape for k, v in head.items()):
        raise ValueError(
            f"timm's {architecture} classifier is {type(linear).__name__}, which cannot hold this model's "
            f"{type(model.head).__name__}; use format='onnx' (logits and class names in the file)."
        )
    net.load_state_dict(state, strict=False)
    linear.load_state_dict(head, strict=True)
    return net


def _check_items(
    model: EmbeddingModel, net: nn.Module, head: nn.Module, items: list[Any], atol: float, path: Path
) -> None:
    """timm's features through ``finetuner_head.py`` must give ``model.encode``'s vectors on real images."""
    batch = model.preprocessing.collate([model.preprocessing.load(item, train=False) for item in items])
    with torch.no_grad():
        got = head(net(batch)).numpy()
    diff = max_difference(got, model.encode(items, num_workers=0, device="cpu"))
    if not diff <= atol:
        raise ValueError(
            f"On {len(items)} real images the timm folder with finetuner_head.py gives vectors {diff:.3g} away "
            f"from model.encode (atol={atol}); nothing was written to {path}. Use format='onnx'."
        )


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


def _check(
    model: EmbeddingModel, net: nn.Module, example: torch.Tensor, atol: float, architecture: str, path: Path
) -> None:
    """timm's output on ``example`` must be this model's: its features, or a classifier's logits."""
    from finetuner.export.onnx import export_ready

    with torch.no_grad(), export_ready(model) as ready:
        expected = ready(example) if model.task == "classification" else ready.features(example)
        got = net(example)
    diff = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
    if not diff <= atol:
        layer = model.spec.get("layer_name")
        raise ValueError(
            f"timm's {architecture} gives outputs {tuple(got.shape)} that differ from this model's "
            f"{tuple(expected.shape)} by {diff:.3g} (atol={atol}): the cut at {layer!r} or its pooling is not "
            f"timm's pooled output. Nothing was written to {path}; use format='onnx', or cut where the "
            "classifier starts (the default layer)."
        )


def _data_config(preprocessing: Any) -> dict[str, Any]:
    config = preprocessing.to_config()
    keys = ("input_size", "mean", "std", "interpolation", "crop_pct")
    data = {key: tuple(config[key]) if isinstance(config[key], list) else config[key] for key in keys}
    return {**data, "crop_mode": "center"}  # ImagePreprocessing always center-crops


def _head_section(model: EmbeddingModel) -> str:
    if model.task == "classification":
        return (
            "## Head\n\n"
            f"The classifier is timm's own: `timm.create_model` gives logits over {len(model.classes)} classes, named "
            "in `config.json`'s `label_names` (`model.pretrained_cfg[\"label_names\"]`); "
            "`model.forward_head(model.forward_features(images), pre_logits=True)` gives the features `encode` "
            "returns (L2-normalise them).\n\n" + head_formula(model)
        )
    return (
        "## Head\n\n"
        f"The backbone in `model.safetensors` gives timm's pooled features; `{HEAD_FILE}` (plain PyTorch, no "
        f"finetuner) with `{HEAD_CONFIG}` and `{HEAD_WEIGHTS}` turns them into the embeddings:\n\n"
        "```python\nimport timm, torch, sys\n"
        'sys.path.insert(0, "path/to/this/folder")\n'
        "from finetuner_head import FinetunerHead\n\n"
        'backbone = timm.create_model("local-dir:path/to/this/folder", pretrained=True).eval()\n'
        'head = FinetunerHead.load("path/to/this/folder")\n'
        "with torch.no_grad():   # images preprocessed as timm.data.resolve_data_config(model=backbone) says\n"
        "    embeddings = head(backbone(images))\n```\n\n" + head_formula(model)
    )


def _first(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")

"""The one tailoring step: turn a backbone (or a saved model) into the `EmbeddingModel` that trains.

`fit`, `build_model`, the CLI and `probe`'s winners all come through `tailor_backbone`; a saved model trained
further comes through `continue_training`. Both read ``freeze`` in one convention (`tailor.resolve_freeze`: the
names `finetuner display` prints for the original model, ``True``/``False``, ``"first:N"``,
``"all-but-last:N"``), resolved and checked against the model before anything is cut, measure the feature width
once, and refuse a model with nothing to train in one place (`check_trainable`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from torch import nn

from finetuner.model import EmbeddingModel
from finetuner.models import Backbone
from finetuner.tailor import (
    ClassificationHead,
    EarlyExit,
    Head,
    attach,
    check_head,
    create_head,
    freeze,
    output_width,
    resolve_freeze,
    to_embedding_model,
)
from finetuner.tailor.freezing import Layers


def tailor_backbone(
    backbone: Backbone,
    *,
    layer_name: str | None = None,
    freeze_layers: Layers = False,
    head: str | Head = "residual",
    output_dim: int | None = None,
    task: str = "embedding",
    classes: Sequence[str] | None = None,
    lora: Any = None,
) -> EmbeddingModel:
    """Cut ``backbone`` after ``layer_name``, freeze, attach the head (and LoRA adapters): the model to train.

    ``backbone`` is not modified (the cut works on a copy).

    Args:
        backbone: from `finetuner.models.build_backbone`.
        layer_name: where to cut (`finetuner.display` lists the layers; text encoders: a transformer block);
            None: the layer feeding the original classifier.
        freeze_layers: `tailor.resolve_freeze`'s forms, in the names of the original (uncut) model.
        head: a head name (`tailor.list_heads`) built with ``output_dim``, or a `Head` used as is.
        output_dim: the head's output size; None: no head for an embedding (the features are the embedding).
        task: ``embedding``, or ``classification`` (a ``ClassificationHead`` over ``classes``).
        classes: class names, for classification.
        lora: LoRA options for the backbone (`finetuner.models.lora.apply_lora`); None: none.

    Raises:
        ValueError: classification without classes, an unknown layer or freeze name, a head that cannot be saved,
            a model with nothing to train.

    Example:
        >>> model = tailor_backbone(build_backbone("timm:test_vit", pretrained=False), freeze_layers=["blocks.0"],
        ...                         task="classification", classes=["a", "b"])  # doctest: +SKIP
    """
    check_head(head)
    if task == "classification" and not classes:
        raise ValueError("task='classification' needs the class names (fit() takes them from the training data).")
    names = resolve_freeze(backbone.module, freeze_layers)  # original names, checked before the cut renames any
    if backbone.backend.pools_itself:  # the encoder pools to one vector itself: nothing to chop
        backbone = dataclasses.replace(backbone, module=copy.deepcopy(backbone.module), spec=dict(backbone.spec))
        backbone.backend.cut(backbone, layer_name)  # text keeps its first blocks (in place), CLIP refuses
        tailored = attach(freeze(backbone.module, names) if names else backbone.module, None)
    else:
        tailored = to_embedding_model(  # on a copy: names frozen before the chop, the whole backbone after it
            backbone.module,
            layer_name=backbone.backend.cut(backbone, layer_name),
            freeze=names if isinstance(names, list) else False,
            example_input=backbone.example_input,
        )
        if names is True:
            freeze(tailored.backbone)
    tailored.head = _head(tailored, backbone.example_input, head, output_dim, task, classes)
    tailored.train(tailored.training)  # the new head follows the backbone's mode
    if lora:
        from finetuner.models.lora import apply_lora

        tailored.backbone = apply_lora(tailored.backbone, lora)
    spec = {
        "backbone": backbone.spec,
        "layer_name": tailored.embedding_layer,
        "task": task,
        "classes": list(classes or []),
    }
    model = EmbeddingModel(
        tailored.backbone, tailored.pool, tailored.head, preprocessing=backbone.preprocessing, spec=spec
    )
    check_trainable(model, freeze_layers)
    return model


def continue_training(
    model: EmbeddingModel,
    *,
    freeze_layers: Layers = False,
    head: str | Head = "residual",
    output_dim: int | None = None,
) -> EmbeddingModel:
    """A saved model to train further, in place: freeze what is asked (freezing is not stored in the weights), and
    attach a head when it has none and ``output_dim`` asks for one.

    ``freeze_layers`` names the layers of the network the model was cut from (a cut backbone that stops early
    keeps the original network inside it).

    Example:
        >>> model = continue_training(finetuner.load("out/model"), freeze_layers=True, output_dim=64)  # doctest: +SKIP
    """
    check_head(head)
    model.train()
    original = model.backbone.model if isinstance(model.backbone, EarlyExit) else model.backbone
    names = resolve_freeze(original, freeze_layers)
    if names:
        freeze(model.backbone if names is True else original, None if names is True else names)
    if model.head is None:
        model.head = _head(model, model.example_input(), head, output_dim, model.task, model.classes)
    check_trainable(model, freeze_layers)
    return model


def check_trainable(model: nn.Module, freeze_layers: Layers) -> None:
    """Refuse a model none of whose parameters trains (the whole backbone frozen and no head), with the fix."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"Nothing to train: freeze={freeze_layers!r} leaves every parameter frozen and there is no head, so fit "
            "would train nothing. Set output_dim=... to attach a trainable head, or freeze fewer layers "
            "(freeze=['layer1', ...], 'first:N', 'all-but-last:N')."
        )


def _head(
    tailored: nn.Module,
    example_input: Any,
    head: str | Head,
    output_dim: int | None,
    task: str,
    classes: Sequence[str] | None,
) -> Head | None:
    """The head for ``task``: a classifier over ``classes``, the given `Head`, one built by name with
    ``output_dim``, or None. The feature width is measured here, once."""
    if isinstance(head, Head) and task != "classification":
        return head
    if task != "classification" and output_dim is None:
        return None
    width = output_width(tailored, tailored.features, example_input)
    if task == "classification":
        return ClassificationHead(width, len(classes))
    return create_head(head, width, output_dim)

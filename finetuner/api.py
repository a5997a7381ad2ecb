"""The public API: `fit`, `build_model`, `evaluate`, `load`, `list_models`, `display`. Orchestration only."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.model import EmbeddingModel
from finetuner.models import ModelEntry, build_backbone
from finetuner.run import Run
from finetuner.training import Callback, EvaluationCallback, TrainConfig, TrainingCheckpoint

logger = logging.getLogger("finetuner")

TASKS = ("embedding", "classification")


def list_models(pattern: str = "*") -> list[ModelEntry]:
    """Registered model names with backend, embedding size and weight source (any timm name works too).

    Example:
        >>> [m.name for m in finetuner.list_models("efficientnet_lite*")]
        ['efficientnet_lite0']
    """
    from finetuner.models import list_models as registry_list

    return registry_list(pattern)


def display(
    model: str | nn.Module, *, input_size: tuple[int, ...] | None = None, example_input: Any = None, **kwargs: Any
) -> str:
    """Print (and return) the layer table of a model: name, type, output shape, parameters, trainable, dense.

    A name is built with random weights (the table does not depend on them).

    Example:
        >>> table = finetuner.display("resnet18")  # doctest: +SKIP
    """
    from finetuner import tailor

    if isinstance(model, EmbeddingModel):
        return tailor.display(model, example_input=model.example_input(), **kwargs)
    pretrained = isinstance(model, nn.Module)  # a module is used as is; a name needs no weights here
    backbone = build_backbone(model, pretrained=pretrained, input_size=input_size, example_input=example_input)
    return tailor.display(backbone.module, example_input=backbone.example_input, **kwargs)


def build_model(
    model: str | Path | nn.Module,
    *,
    task: str = "embedding",
    freeze: bool | str | Sequence[str] = False,
    output_dim: int | None = None,
    layer_name: str | None = None,
    head: str | nn.Module = "projection",
    classes: Sequence[str] | None = None,
    lora: bool | dict[str, Any] | None = None,
    pretrained: bool = True,
    input_size: tuple[int, ...] | None = None,
    example_input: Any = None,
    **model_kwargs: Any,
) -> EmbeddingModel:
    """Tailor a model without training it: chop after ``layer_name``, freeze, attach a head.

    Args:
        model: a registered name (`list_models`), a timm name, a saved folder, a Hugging Face folder or an
            ``nn.Module`` (with ``input_size`` or ``example_input``).
        task: ``embedding`` (metric learning) or ``classification`` (replaces the classifier with
            ``Linear(features, len(classes))``).
        freeze: True for the whole backbone, or layer names / prefixes, or ``"first:N"`` for the first N
            transformer blocks (with the embeddings).
        output_dim: attach a projection head with this output size (``head="linear"`` for one Linear layer).
        layer_name: cut the network after this layer (`display` lists them); default: the layer feeding the
            original classifier.
        classes: class names, for classification.
        lora: True or LoRA options (``rank``, ``alpha``, ``dropout``, ``target_modules``, or peft's ``r``,
            ``lora_alpha``, ``lora_dropout``; or a ``peft.LoraConfig``) to train low-rank adapters on the backbone.
        pretrained: load pretrained weights (from disk; never downloaded).

    Example:
        >>> model = finetuner.build_model("resnet18", pretrained=False, freeze=True, output_dim=64)
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
        True
    """
    from finetuner import tailor
    from finetuner.model import is_saved_model

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    if isinstance(model, (str, Path)) and is_saved_model(model):
        return _continue_from_saved(EmbeddingModel.load(model), freeze, output_dim, head)
    if task == "embedding" and freeze is True and output_dim is None:
        raise ValueError(
            "freeze=True without output_dim would train nothing: set output_dim=... to attach a trainable "
            "projection head, or freeze only some layers (freeze=['layer1', ...])."
        )
    backbone = build_backbone(
        model, pretrained=pretrained, input_size=input_size, example_input=example_input, **model_kwargs
    )
    freeze = _resolve_freeze(backbone.module, freeze)
    classification = task == "classification"
    if classification and not classes:
        raise ValueError("task='classification' needs the class names (fit() takes them from the training data).")
    source = backbone.spec.get("source")
    if source in ("clip", "hf_text"):
        # Encoders that already pool to one vector (text with the attention mask, CLIP per tower): nothing to cut,
        # but a text encoder can keep its first blocks only.
        if layer_name is not None and source == "clip":
            raise ValueError("layer_name is not supported for CLIP dual encoders: freeze layers instead.")
        if layer_name is not None:
            from finetuner.models.hf_text import truncate_blocks

            truncate_blocks(backbone, layer_name)
        tailored = tailor.attach(tailor.freeze(backbone.module, freeze) if freeze else backbone.module, None)
        if output_dim is not None:
            tailored.head = _make_head(head, tailored, backbone.example_input, output_dim)
    else:
        tailored = tailor.to_embedding_model(
            backbone.module,
            layer_name=layer_name,
            freeze=False if classification else freeze,
            output_dim=None if classification else output_dim,
            example_input=backbone.example_input,
            head=head,
        )
        if classification and freeze:
            tailor.freeze(tailored.backbone, freeze)
    if classification:
        tailored.head = tailor.ClassificationHead(_feature_dim(tailored, backbone.example_input), len(classes))
    if lora:
        from finetuner.models.lora import apply_lora

        tailored.backbone = apply_lora(tailored.backbone, lora)
    spec = {
        "backbone": backbone.spec,
        "layer_name": getattr(tailored, "embedding_layer", None),
        "task": task,
        "classes": list(classes or []),
    }
    return EmbeddingModel(
        tailored.backbone, tailored.pool, tailored.head, preprocessing=backbone.preprocessing, spec=spec
    )


def _continue_from_saved(
    model: EmbeddingModel, freeze: bool | str | Sequence[str], output_dim: int | None, head: str | nn.Module
) -> EmbeddingModel:
    """A saved model to train further: freeze what is asked (freezing is not stored in the weights), and attach a
    head when the saved model has none and ``output_dim`` asks for one."""
    from finetuner import tailor

    model.train()
    if freeze is True:
        tailor.freeze(model.backbone)
    elif freeze:
        names = _resolve_freeze(model.backbone, freeze)
        # an EarlyExit backbone holds the original network as `.model`: the user's names are the original ones
        prefix = "model." if isinstance(model.backbone, tailor.EarlyExit) else ""
        tailor.freeze(model.backbone, [prefix + name for name in names])
    if output_dim is not None and model.head is None:
        model.head = _make_head(head, model, model.example_input(), output_dim)
    return model


def _resolve_freeze(module: nn.Module, freeze: bool | str | Sequence[str]) -> bool | list[str]:
    """``"first:N"`` → the module names of the embeddings and the first N blocks of ``module``; other values
    unchanged."""
    if isinstance(freeze, str):
        if freeze.startswith("first:"):
            from finetuner.models.text_freeze import resolve_freeze_spec

            return resolve_freeze_spec(module, freeze)
        return [freeze]
    return list(freeze) if isinstance(freeze, (list, tuple)) else bool(freeze)


def _feature_dim(tailored: nn.Module, example_input: Any) -> int:
    from finetuner.core.device import move_to

    was_training = tailored.training
    tailored.eval()
    with torch.no_grad():
        inputs = move_to(example_input, torch.device("cpu"))
        features = tailored.features(inputs)
    tailored.train(was_training)
    return int(features.shape[1])


def _make_head(head: str | nn.Module, tailored: nn.Module, example_input: Any, output_dim: int) -> nn.Module:
    from finetuner.tailor.heads import make_head

    if isinstance(head, nn.Module):
        return head
    return make_head(head, _feature_dim(tailored, example_input), output_dim)


def fit(
    model: str | Path | nn.Module,
    train_data: Any,
    eval_data: Any = None,
    *,
    task: str = "embedding",
    freeze: bool | str | Sequence[str] = False,
    output_dim: int | None = None,
    layer_name: str | None = None,
    head: str | nn.Module = "projection",
    loss: str | nn.Module | None = None,
    miner: str | nn.Module | None = None,
    loss_options: dict[str, Any] | None = None,
    miner_options: dict[str, Any] | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    optimizer_options: dict[str, Any] | None = None,
    scheduler: str | None = None,
    warmup_ratio: float = 0.0,
    grad_clip: float | None = None,
    precision: str = "auto",
    num_items_per_class: int = 4,
    val_split: float = 0.0,
    callbacks: Sequence[Callback] = (),
    device: str = "auto",
    seed: int = 0,
    num_workers: int | str = "auto",
    augment: bool = True,
    cache: bool = True,
    cache_views: int = 1,
    cache_dtype: str = "float32",
    cache_dir: str | Path | None = None,
    lora: bool | dict[str, Any] | None = None,
    pretrained: bool = True,
    input_size: tuple[int, ...] | None = None,
    example_input: Any = None,
    model_options: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    eval_k: Sequence[int] = (1, 5, 10),
    max_eval_queries: int | None = None,
    compile: bool = False,
) -> Run:
    """Tailor ``model``, train it on ``train_data`` and evaluate it before and after.

    Args:
        model: a registered name, a timm name, a saved folder, a Hugging Face folder or an ``nn.Module``.
        train_data: an image folder (one subfolder per class), a CSV, a list of ``(item, label)`` or
            ``(query, document)`` pairs, a ``Dataset``, or ``"fashion-mnist"`` (the embedded default).
        eval_data: the same kinds; or ``val_split`` holds out a stratified fraction of ``train_data``.
        task, freeze, output_dim, layer_name, head, lora, pretrained: see `build_model`.
        loss: a pytorch-metric-learning loss name (default ``TripletMarginLoss``; ``CrossEntropyLoss`` for
            classification; ``MultipleNegativesRankingLoss`` for pairs), or a module.
        miner: a pytorch-metric-learning miner name, or a module.
        augment: light training augmentation of images (random resized crop, flip); off keeps the
            evaluation transform for training too.
        cache: with a frozen backbone, compute its features once and train the head on them.
        cache_views: cache this many augmented views per item (1: no augmentation).
        output_dir: writes ``model/``, ``checkpoints/`` (resumable) and ``report/`` there.
        resume_from: a checkpoint folder (e.g. ``output_dir/checkpoints``) to continue from.
        model_options: passed to the model's builder, e.g. ``{"pooling": "cls", "max_length": 128}`` for text
            models or ``{"weights": "resnet50.pth"}``.

    Returns:
        A `Run` with ``model``, ``history`` and ``metrics`` (``{"before": ..., "after": ...}``).

    Example:
        >>> run = finetuner.fit("efficientnet_lite0", "fashion-mnist", freeze=True, output_dim=128)  # doctest: +SKIP
        >>> run.save("out/model")  # doctest: +SKIP
    """
    from finetuner import _fit
    from finetuner.core.device import resolve_device, seed_everything
    from finetuner.data import PairData, check_labels_for_pair_loss, load_data
    from finetuner.training import Trainer, build_loss, build_miner, distributed
    from finetuner.training.cache import FeatureCache
    from finetuner.training.checkpoint import load_checkpoint
    from finetuner.training.losses import needs_two_classes

    settings = {k: v for k, v in locals().items() if _jsonable(v)}
    distributed.init_distributed()
    seed_everything(seed)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        optimizer_kwargs=dict(optimizer_options or {}),
        scheduler=scheduler,
        warmup_ratio=warmup_ratio,
        grad_clip=grad_clip,
        precision=precision,
        device=device,
        seed=seed,
        num_items_per_class=num_items_per_class,
        num_workers=num_workers,
        compile=compile,
    )
    train = load_data(train_data)
    evaluation = load_data(eval_data) if eval_data is not None else None
    if evaluation is None and val_split:
        train, evaluation = train.split(val_split, seed=seed)  # (rest, held-out fraction)
    pairs = isinstance(train, PairData)
    if task == "classification" and pairs:
        raise ValueError("task='classification' needs labelled data (item, label), not (query, document) pairs.")
    net = build_model(
        model,
        task=task,
        freeze=freeze,
        output_dim=output_dim,
        layer_name=layer_name,
        head=head,
        classes=None if pairs else train.classes,
        lora=lora,
        pretrained=pretrained,
        input_size=input_size,
        example_input=example_input,
        **(model_options or {}),
    )
    if not pairs:
        net.spec.setdefault("classes", train.classes)
    if not augment and getattr(net.preprocessing, "augment", None) is not None:
        net.preprocessing = dataclasses.replace(net.preprocessing, augment=None)
    if task == "classification":
        default_loss = "CrossEntropyLoss"
    elif pairs:
        default_loss = "CLIPLoss" if net.spec["backbone"].get("source") == "clip" else "MultipleNegativesRankingLoss"
    else:
        default_loss = "TripletMarginLoss"
    embedding_dim = output_dim or _feature_dim(net, net.example_input())
    loss_module = build_loss(
        loss or default_loss,
        num_classes=None if pairs else len(train.classes),
        embedding_dim=embedding_dim,
        **(loss_options or {}),
    )
    if not pairs and needs_two_classes(loss_module):
        check_labels_for_pair_loss(train)
    run_device = resolve_device(device)
    metric_kwargs = {"k": tuple(eval_k), "max_queries": max_eval_queries}
    use_cache = cache and net.head is not None and _fit.backbone_is_frozen(net) and distributed.world_size() == 1
    features = None
    if use_cache:
        feature_cache = FeatureCache(cache_dir, dtype=cache_dtype)
        features = _fit.cache_features(
            net, train, evaluation, feature_cache, views=cache_views, config=config, device=run_device
        )
    sampler = _fit.make_batch_sampler(train, loss_module, config)
    if use_cache:
        batches, trained = _fit.tensor_batches(features, train, sampler), net.head
    else:
        batches, trained = _fit.item_batches(net, train, sampler, config), net
    trainer = Trainer(
        trained,
        loss_module,
        batches,
        config,
        miner=build_miner(miner, **(miner_options or {})),
        callbacks=_callbacks(callbacks, evaluation is not None, output_dir),
    )
    trainer.encode = net.encode
    trainer.save_model = net.save
    eval_features = features.eval if features is not None else None
    metrics: dict[str, dict[str, float]] = {}
    if evaluation is not None:
        trainer.evaluate = _fit.evaluation_function(
            net, evaluation, eval_features, batch_size=batch_size, metric_kwargs=metric_kwargs
        )
        if distributed.is_main_process():
            net.to(run_device)
            metrics["before"] = _fit.baseline_metrics(
                net, evaluation, eval_features, batch_size=batch_size, metric_kwargs=metric_kwargs
            )
            logger.info("before training: %s", _summary(metrics["before"]))
    if resume_from is not None:
        trainer.resume_from(load_checkpoint(resume_from))
    history = trainer.fit()
    net.eval()
    if evaluation is not None and distributed.is_main_process():
        metrics["after"] = trainer.evaluate()
        logger.info("after training: %s", _summary(metrics["after"]))
    examples = []
    if evaluation is not None and not pairs and task == "embedding" and distributed.is_main_process():
        examples = _fit.retrieval_examples(net, evaluation, eval_features)
    run = Run(model=net, history=history, metrics=metrics, config=settings, examples=examples)
    if output_dir is not None and distributed.is_main_process():
        run.save(Path(output_dir) / "model")
        run.report(Path(output_dir) / "report")
    distributed.barrier()
    return run


def _callbacks(user: Sequence[Callback], has_eval: bool, output_dir: str | Path | None) -> list[Callback]:
    callbacks = list(user)
    if has_eval and not any(isinstance(c, EvaluationCallback) for c in callbacks):
        callbacks.insert(0, EvaluationCallback())
    if output_dir is not None and not any(isinstance(c, TrainingCheckpoint) for c in callbacks):
        callbacks.append(TrainingCheckpoint(Path(output_dir) / "checkpoints"))
    return callbacks


def evaluate(
    model: EmbeddingModel | str | Path,
    query_data: Any,
    index_data: Any = None,
    *,
    k: Sequence[int] = (1, 5, 10),
    batch_size: int = 64,
    max_queries: int | None = None,
) -> dict[str, float]:
    """Retrieval metrics of a model on labelled data (leave-one-out without ``index_data``) or on pairs.

    Returns ``recall@k``, ``precision@k``, ``map@k``, ``ndcg@k``, ``map@r``, ``r_precision``, ``mrr``
    (pairs: ``recall@k``, ``map@k``, ``ndcg@k``, ``mrr``).

    Example:
        >>> finetuner.evaluate("out/model", "data/eval")["recall@1"]  # doctest: +SKIP
        0.83
    """
    from finetuner.evaluation import evaluate_data

    if not isinstance(model, EmbeddingModel):
        model = load(model)

    def encode(items):
        return model.encode(items, batch_size)

    return evaluate_data(encode, query_data, index_data, k=tuple(k), max_queries=max_queries)


def load(folder: str | Path, *, model: nn.Module | None = None, device: str | None = None) -> EmbeddingModel:
    """Load a model saved by ``run.save()`` / ``model.save()``: no pickle, no other argument needed.

    Example:
        >>> model = finetuner.load("out/model")  # doctest: +SKIP
        >>> model.encode(["shoe.png"]).shape  # doctest: +SKIP
        (1, 128)
    """
    return EmbeddingModel.load(folder, model=model, device=device)


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None))) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value)
    )


def _summary(metrics: dict[str, float]) -> str:
    keys = [k for k in ("recall@1", "map@r", "accuracy", "mrr") if k in metrics]
    return " ".join(f"{k}={metrics[k]:.4f}" for k in keys)

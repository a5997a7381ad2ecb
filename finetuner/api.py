"""The public API: `fit`, `build_model`, `evaluate`, `load`, `list_models`, `display`. Orchestration only."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from finetuner.config import FitConfig, ModelConfig
from finetuner.core.log import configure_logging
from finetuner.model import EmbeddingModel, is_saved_model
from finetuner.models import Backbone, ModelEntry, build_backbone
from finetuner.run import Run
from finetuner.training import Callback

logger = logging.getLogger("finetuner")

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
    model: str | Path | nn.Module | Backbone,
    config: ModelConfig | None = None,
    *,
    classes: Sequence[str] | None = None,
    **options: Any,
) -> EmbeddingModel:
    """Tailor a model without training it: chop after ``layer_name``, freeze, attach a head.

    Args:
        model: a registered name (`list_models`), a timm name, a saved folder, a Hugging Face folder, an
            ``nn.Module`` (with ``input_size`` or ``example_input``) or a built `finetuner.models.Backbone`.
        config: a `finetuner.config.ModelConfig`; or give its fields as keywords (``freeze``, ``output_dim``,
            ``layer_name``, ``head``, ``task``, ``lora``, ``pretrained``, ``input_size``, ``example_input``,
            ``model_options``), documented there. Other keywords go to the model's builder, as
            ``model_options`` do (``weights="resnet50.pth"``, ``pooling="cls"``).
        classes: class names, for classification.

    Example:
        >>> model = finetuner.build_model("resnet18", pretrained=False, freeze=True, output_dim=64)
        >>> sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
        True
    """
    from finetuner.tailoring import continue_training, tailor_backbone

    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    builder = {k: options.pop(k) for k in list(options) if k not in fields}
    config = dataclasses.replace(config, **options) if config is not None else ModelConfig(**options)
    if builder:
        config = dataclasses.replace(config, model_options={**config.model_options, **builder})
    options = {"freeze_layers": config.freeze, "head": config.head, "output_dim": config.output_dim}
    if isinstance(model, (str, Path)) and is_saved_model(model):
        return continue_training(EmbeddingModel.load(model), **options)
    backbone = build_backbone(
        model,
        pretrained=config.pretrained,
        input_size=config.input_size,
        example_input=config.example_input,
        **config.model_options,
    )
    model = tailor_backbone(
        backbone, layer_name=config.layer_name, task=config.task, classes=classes, lora=config.lora, **options
    )
    if config.adapter != "both":  # saved with the model: encode_document keeps the backbone's features
        model.spec["adapter"] = config.adapter
    return model


def fit(
    model: str | Path | nn.Module | None = None,
    train_data: Any = None,
    eval_data: Any = None,
    *,
    test_data: Any = None,
    config: FitConfig | str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> Run:
    """Tailor ``model``, train it on ``train_data`` and evaluate it before and after.

    Args:
        model: a registered name, a timm name, a saved folder, a Hugging Face folder or an ``nn.Module``; None
            (or ``"vectors"``) when ``train_data`` is `finetuner.data.VectorData` / `VectorPairs`: the backbone is
            then the identity on the given vectors.
        train_data: an image folder (one subfolder per class), a CSV, a list of ``(item, label)`` or
            ``(query, document)`` pairs, a ``Dataset``, ``"fashion-mnist"`` (the embedded default), or
            `VectorData` / `VectorPairs` (embeddings computed elsewhere).
        eval_data: validation data, the same kinds; it scores every epoch and chooses the returned model. Without
            it, validation data is held out of ``train_data`` (``val_split``, ``val_class_split``).
        test_data: scored before and after training and never used for any choice: ``run.metrics["test"]``.
        config: a `finetuner.config.FitConfig` (or a JSON/YAML file of one); keyword options override it.
        callbacks: extra `finetuner.training.Callback` objects.
        **options: any `FitConfig` field by its flat name (``freeze``, ``output_dim``, ``epochs``, ``loss``,
            ``val_split``, ``cache_dir``, ``output_dir``, ...; `FitConfig.option_names()` lists them, the sections
            of `finetuner.config` document them), one set of defaults shared with the CLI.

    Returns:
        A `Run` with ``model``, ``history`` and ``metrics``: ``before`` / ``after`` on the validation data (with
        ``seen/`` and ``new/`` class parts), ``test`` (``before`` / ``after``) with ``test_data``, and
        ``selection`` (the candidate kept and why).

    Example:
        >>> run = finetuner.fit("efficientnet_lite0", "fashion-mnist", freeze=True, output_dim=128)  # doctest: +SKIP
        >>> run.save("out/model")  # doctest: +SKIP
    """
    from finetuner import _fit
    from finetuner.core.device import seed_everything
    from finetuner.training import Trainer, distributed
    from finetuner.training.checkpoint import load_checkpoint

    if train_data is None:
        raise ValueError("fit needs train_data: a folder, a table, pairs, 'fashion-mnist' or VectorData(vectors, ...).")
    config = FitConfig.from_options(FitConfig.load(config) if isinstance(config, (str, Path)) else config, **options)
    config.training.learning_rate = config.training.default_learning_rate(config.model.task)  # None: the task's
    configure_logging(config.output.verbose)
    distributed.init_distributed()
    seed_everything(config.training.seed)
    data = _fit.prepare_data(train_data, eval_data, test_data, config)
    model, config = _fit.resolve_vectors(model, data, config)  # VectorData / VectorPairs: the identity backbone
    config, probed, built = _fit.choose_layer_and_head(model, data, config)  # built: the probe's backbone, or model
    net = build_model(built, config.model, classes=data.classes)
    _fit.check_data(net, data)  # a text model on image files, empty texts, texts for an image model: refused
    _fit.apply_data_options(net, config)
    loss, miner = _fit.build_objective(net, data, config.training)
    plan = _fit.plan_training(net, data, loss, config)
    before = plan.scores(tuned=False)
    config, loss, miner, searched = _fit.choose_recipe(plan, net, data, (loss, miner), config, before.get("validation"))
    selection = _fit.model_selection(plan, before.get("validation"), config.evaluation)
    trainer = Trainer(
        plan.trained,
        loss,
        plan.batches,
        config.training,
        miner=miner,
        callbacks=_fit.fit_callbacks(callbacks, plan, config, selection),
        evaluate=plan.metrics if plan.evaluator is not None else None,
        encode=net.evaluation_outputs,
        save_model=net.save,
    )
    if config.output.resume_from is not None:
        trainer.resume_from(load_checkpoint(config.output.resume_from))
    history = trainer.fit()
    distributed.finish_training(plan.trained)  # under torchrun: every rank holds rank 0's model
    net.eval()
    after = plan.scores(tuned=True)  # the validated model's figures, reported even when it is refit below
    refitted = _fit.refit(plan, data, loss, miner, config, selection)
    if refitted is not None:  # the test set scores the model returned; validation keeps the validated figures
        after.update(plan.scores(tuned=True, sets=[which for which in after if which != "validation"]))
    metrics = _fit.run_metrics(before, after, selection, probed, data)
    if refitted is not None:
        metrics["selection"]["refit"] = refitted
    if searched is not None:
        metrics["selection"]["search"] = searched
    net.card_data = _fit.card_data(model, loss, miner, config, data, metrics)
    run = Run(net, history, metrics, config=config.to_dict(), examples=_fit.retrieval_examples(plan, data))
    _fit.write_outputs(run, config.output)
    logger.info("%s", run.verdict())
    distributed.barrier()
    return run


def evaluate(
    model: EmbeddingModel | str | Path,
    query_data: Any,
    index_data: Any = None,
    *,
    k: Sequence[int] = (1, 5, 10),
    batch_size: int = 64,
    max_queries: int | None = None,
) -> dict[str, float]:
    """Retrieval metrics of a model on labelled data (leave-one-out without ``index_data``) or on pairs;
    accuracy for a classifier on labelled data.

    Returns ``recall@k``, ``precision@k``, ``map@k``, ``ndcg@k``, ``map@r``, ``r_precision``, ``mrr``
    (pairs: ``recall@k``, ``map@k``, ``ndcg@k``, ``mrr``; classifiers: ``accuracy``, ``macro_f1``).

    Example:
        >>> finetuner.evaluate("out/model", "data/eval")["recall@1"]  # doctest: +SKIP
        0.83
    """
    from finetuner.evaluation import Evaluator

    if not isinstance(model, EmbeddingModel):
        model = load(model)
    evaluator = Evaluator(
        query_data, index_data, task=model.task, classes=model.classes, k=tuple(k), max_queries=max_queries
    )
    return evaluator(lambda items: model.evaluation_outputs(items, batch_size))


def load(folder: str | Path, *, model: nn.Module | None = None, device: str | None = None) -> EmbeddingModel:
    """Load a model saved by ``run.save()`` / ``model.save()``: no pickle, no other argument needed.

    Example:
        >>> model = finetuner.load("out/model")  # doctest: +SKIP
        >>> model.encode(["shoe.png"]).shape  # doctest: +SKIP
        (1, 128)
    """
    return EmbeddingModel.load(folder, model=model, device=device)

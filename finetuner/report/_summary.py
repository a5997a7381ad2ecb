"""What the report's summary card says, as data: the headline before → after figures, the per-class changes, what
was trained, the title. No HTML here (that is `_html`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finetuner.evaluation.changes import Change
from finetuner.report.plots import HEADLINE, is_number

PARTS = (("", "all classes"), ("seen/", "seen classes"), ("new/", "new classes"))


def scored_stages(metrics: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], Mapping[str, Any]] | None:
    """``(where, before, after)``: test data when the run has it, else validation data; None without both stages."""
    test = metrics.get("test") or {}
    for where, stages in (("test data", test), ("validation data", metrics)):
        before, after = stages.get("before"), stages.get("after")
        if isinstance(before, Mapping) and isinstance(after, Mapping) and before and after:
            return where, before, after
    return None


def headline_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """The two headline metrics (the first two of `HEADLINE`; retrieval: R@1 and MAP@R) on all classes, then on
    seen and on new classes, where both stages have them."""
    metrics = [m for m in HEADLINE if is_number(after.get(m)) and is_number(before.get(m))][:2]
    return [
        Change(part_name, metric, prefix.rstrip("/"), float(before[prefix + metric]), float(after[prefix + metric]))
        for prefix, part_name in PARTS
        for metric in metrics
        if is_number(before.get(prefix + metric)) and is_number(after.get(prefix + metric))
    ]


def held_out_classes(card: Mapping[str, Any], changes: Sequence[Change]) -> list[str]:
    """The classes training never saw: from the card's evaluation data, else the per-class figures' ``new`` part."""
    named = (card.get("eval_data") or {}).get("held_out_classes")
    return list(named) if named else [c.name for c in changes if c.part == "new"]


def title(card: Mapping[str, Any]) -> str:
    """``<model> on <data>``: the base model and the training data's name, or its size when it has no name."""
    model = card.get("base_model") or "finetuner run"
    data = card.get("train_data") or {}
    name = data.get("source") or data.get("name")
    if name:
        return f"{model} on {name}"
    if data.get("items"):
        return f"{model} on {describe_data(data)}"
    return str(model)


def describe_data(data: Mapping[str, Any]) -> str:
    """``fashion-mnist: 1,800 items, 10 classes`` from a card's data summary."""
    size = []
    if data.get("items") is not None:
        size.append(f"{int(data['items']):,} {'pairs' if data.get('kind') == 'pairs' else 'items'}")
    if data.get("classes") is not None:
        size.append(f"{int(data['classes']):,} classes")
    name = data.get("source") or data.get("name")
    text = ", ".join(size)
    return f"{name}: {text}" if name and text else str(name or text)


def facts(card: Mapping[str, Any], config: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What was trained, as (label, text) rows: model, head, backbone, loss, epochs, data."""
    model_config = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    training = config.get("training") if isinstance(config.get("training"), Mapping) else {}
    rows = []
    if card.get("base_model"):
        weights = card.get("weights")
        rows.append(("model", f"{card['base_model']}" + (f" (weights: {weights})" if weights else "")))
    head = model_config.get("head")
    if head is not None or model_config.get("output_dim") is not None:
        dim = model_config.get("output_dim")
        layer = model_config.get("layer_name")
        text = f"{head or 'none'}" + (f" → {dim} dims" if dim is not None else "")
        text += f", after layer {layer}" if layer else ""
        if metrics.get("probe"):
            text += " (chosen by the probe)"
        rows.append(("head", text))
    frozen = card.get("frozen") if card.get("frozen") is not None else model_config.get("freeze")
    rows.append(("backbone", _backbone(frozen, card.get("lora") or model_config.get("lora"))))
    if card.get("loss"):
        rows.append(("loss", str(card["loss"]) + (f" with {card['miner']}" if card.get("miner") else "")))
    epochs = (card.get("training") or {}).get("epochs", training.get("epochs"))
    if epochs is not None:
        rows.append(("epochs", str(epochs)))
    for key, name in (("train_data", "training data"), ("eval_data", "scored on")):
        if card.get(key):
            rows.append((name, describe_data(card[key])))
    return rows


def verdict(selection: Mapping[str, Any]) -> str:
    """The selection's choice in one sentence: which candidate was kept, and why."""
    epoch, alpha, reason = selection.get("epoch"), selection.get("alpha"), selection.get("reason", "")
    if selection.get("untuned"):
        kept = "Kept the untuned backbone"
    elif epoch == 0:
        kept = "Kept the untrained start (epoch 0)"
    elif epoch is not None:
        kept = f"Kept epoch {epoch}"
    else:
        kept = f"Kept a mix of the start and the best epoch (alpha={alpha})"
    return f"{kept}: {reason}." if reason else f"{kept}."


def _backbone(frozen: Any, lora: Any) -> str:
    if lora:
        return "frozen, with LoRA adapters trained"
    if frozen is True:
        return "frozen (only the head trained)"
    if not frozen:
        return "trained with the head"
    return f"partly frozen ({frozen})"

"""Partial freezing of transformer-like models: "the first N blocks" as module names that `tailor.freeze` takes."""

from __future__ import annotations

from torch import nn

FIRST_BLOCKS = "first:"


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer blocks: the longest ``nn.ModuleList`` whose items share one type.

    Ties go to the list with more parameters. Works for Hugging Face encoders (``encoder.layer``), timm ViTs
    (``blocks``) and GPT-like models (``h``) alike.

    Returns:
        ``(dotted name, the ModuleList)``.

    Example:
        >>> from transformers import AutoModel, BertConfig
        >>> bert = AutoModel.from_config(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2))
        >>> find_blocks(bert)[0]
        'encoder.layer'
    """
    candidates = [
        (len(module), sum(p.numel() for p in module.parameters()), name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0 and len({type(m) for m in module}) == 1
    ]
    if not candidates:
        raise ValueError(f"{type(model).__name__} has no nn.ModuleList of identical blocks, so 'first N blocks' "
                         "has no meaning for it: freeze layers by name instead")
    _, _, name, blocks = max(candidates, key=lambda c: (c[0], c[1]))
    return name, blocks


def embedding_modules(model: nn.Module, blocks_name: str) -> list[str]:
    """Names of the outermost modules called ``*embed*`` (token, position, patch embeddings) outside the blocks.

    Example:
        >>> embedding_modules(bert, "encoder.layer")  # doctest: +SKIP
        ['embeddings']
    """
    names: list[str] = []
    for name, _ in model.named_modules():
        inside_blocks = name.startswith(blocks_name + ".")
        inside_found = any(name.startswith(found + ".") for found in names)
        if "embed" in name.rsplit(".", 1)[-1].lower() and not inside_blocks and not inside_found:
            names.append(name)
    return names


def first_blocks(model: nn.Module, n: int) -> list[str]:
    """Module names covering the embeddings and the first ``n`` blocks (``n=0``: the embeddings only).

    Example:
        >>> first_blocks(bert, 1)  # doctest: +SKIP
        ['embeddings', 'encoder.layer.0']
    """
    name, blocks = find_blocks(model)
    if not 0 <= n <= len(blocks):
        raise ValueError(f"{type(model).__name__} has {len(blocks)} blocks ({name}): freeze 'first:0' to "
                         f"'first:{len(blocks)}', not 'first:{n}'")
    return embedding_modules(model, name) + [f"{name}.{i}" for i in range(n)]


def resolve_freeze_spec(model: nn.Module, spec: str) -> list[str]:
    """Turn a short freeze form into the module names to freeze.

    ``"first:N"`` means the embeddings and the first N transformer blocks: the earliest layers, which learn the
    most general features, stay fixed and the later blocks adapt.

    Args:
        model: the network (names are relative to it: pass the module that `tailor.freeze` gets).
        spec: ``"first:N"`` with ``N >= 0``.

    Returns:
        Dotted module names, in execution order.

    Example:
        >>> resolve_freeze_spec(bert, "first:1")  # doctest: +SKIP
        ['embeddings', 'encoder.layer.0']
    """
    count = spec[len(FIRST_BLOCKS):] if spec.startswith(FIRST_BLOCKS) else ""
    if not count.isdigit():
        raise ValueError(f"unknown freeze form {spec!r}: use 'first:N' to freeze the embeddings and the first N blocks")
    return first_blocks(model, int(count))

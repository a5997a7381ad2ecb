"""The ``sentence-transformers`` export format: a folder that ``SentenceTransformer(folder)`` loads, no finetuner.

The folder is built with sentence-transformers' own modules and saved by its own ``save``: ``Transformer`` (the
Hugging Face encoder and tokenizer, loadable by ``AutoModel.from_pretrained``), ``Pooling`` (the model's token
pooling), the head, and ``Normalize``. A head that is a chain of Linear layers (``linear``, ``projection``)
becomes one native ``Dense`` per Linear layer (a BatchNorm in eval mode folded exactly into the Linear before it;
the activation after it kept): no remote code. Any other head of ``finetuner_head.py``'s types (the default
``residual``) becomes that file's ``FinetunerHead``, a repository-local module: load the folder with
``SentenceTransformer(folder, trust_remote_code=True)``. A ``truncate_dim`` is kept as a ``Dense`` that slices
(identity rows) or inside ``FinetunerHead``, before ``Normalize``, so vectors are renormalised as ``encode`` does.
Before the folder is kept, it is loaded back by sentence-transformers and must give ``model.encode``'s vectors
within ``atol`` on real texts (``check_items``, the model's example items) and a few fixed ones.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from finetuner.card import write_model_card
from finetuner.core.files import atomic_folder
from finetuner.export.checks import check_items as real_items
from finetuner.export.checks import max_difference
from finetuner.export.head_file import copy_head_module, standalone_head
from finetuner.export.registry import register_exporter
from finetuner.models.hf_text import EXAMPLE_TEXTS, HFTextEncoder

if TYPE_CHECKING:
    from finetuner.model import EmbeddingModel

# activations sentence-transformers' Dense rebuilds by class name with default arguments
_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Identity, nn.LeakyReLU, nn.ELU)
_CHECK_TEXTS = (*EXAMPLE_TEXTS, "a", "Two words", "A much longer text, " * 20)


@register_exporter("sentence-transformers")
def export_sentence_transformers(
    model: EmbeddingModel,
    path: Path,
    *,
    check_items: Sequence[str] | None = None,
    check_texts: Sequence[str] = _CHECK_TEXTS,
    atol: float = 1e-5,
) -> Path:
    """Write a text model as a sentence-transformers folder (plus a model card), checked against ``model.encode``.

    Args:
        model: an `EmbeddingModel` over a Hugging Face text encoder (``hf_text`` backbone).
        path: the folder to write (replaced atomically).
        check_items: real texts to check on; default: the model's example items (``card_data.example_items``).
        check_texts: more texts the check encodes (short, long, one letter).
        atol: the largest difference between the two models' normalised vectors the check accepts.

    Returns:
        ``path``.

    Raises:
        ValueError: not a Hugging Face text model (CLIP, images), a custom head neither ``Dense`` modules nor
            ``finetuner_head.py`` can reproduce, or a failed check; nothing is written then.

    Example:
        >>> model.export("out/st", format="sentence-transformers")  # doctest: +SKIP
        >>> SentenceTransformer("out/st", trust_remote_code=True).encode(["a text"])  # doctest: +SKIP
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    encoder = model.backbone
    if not isinstance(encoder, HFTextEncoder):
        source = model.spec.get("backbone", {}).get("source")
        raise ValueError(
            f"The sentence-transformers format needs a Hugging Face text encoder (an hf_text backbone); this model's "
            f"backbone is {type(encoder).__name__} (source {source!r}). Use format='onnx' or 'timm' for image "
            "models; a CLIP model exports only as a finetuner folder (model.save)."
        )
    head, remote = head_modules(model)
    texts = [*real_items(model, check_items), *check_texts]
    expected = model.encode(texts, num_workers=0, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        encoder.transformer.save_pretrained(tmp)
        model.preprocessing.tokenizer.save_pretrained(tmp)
        transformer = Transformer(tmp, max_seq_length=model.preprocessing.max_length)
        pooling = Pooling(encoder.output_dim, pooling_mode=encoder.pooling)
        st_model = SentenceTransformer(modules=[transformer, pooling, *head, Normalize()], device="cpu")
    with atomic_folder(path) as staging:
        st_model.save(str(staging), create_model_card=False)
        if remote:
            copy_head_module(staging)
        reloaded = SentenceTransformer(str(staging), device="cpu", trust_remote_code=remote, local_files_only=True)
        diff = max_difference(reloaded.encode(texts, convert_to_numpy=True), expected)
        if not diff <= atol:
            raise ValueError(
                f"The sentence-transformers folder differs from this model by {diff:.3g} (atol={atol}); nothing was "
                f"written to {path}. Report it with the model's spec: "
                f"{model.spec.get('backbone', {}).get('config', {})}"
            )
        write_model_card(model, staging, format="sentence-transformers")
    return path


def head_modules(model: EmbeddingModel) -> tuple[list[nn.Module], bool]:
    """The sentence-transformers modules between ``Pooling`` and ``Normalize`` for ``model``, and whether they
    need remote code (``trust_remote_code=True``): native ``Dense`` modules when the head is a chain of Linear
    layers (or there is none), else ``finetuner_head.py``'s ``FinetunerHead``.

    Raises:
        ValueError: a head neither can reproduce (the message names what would work).

    Example:
        >>> head_modules(finetuner.build_model("bert", head="residual"))[1]  # doctest: +SKIP
        True
    """
    head = None if model.task == "classification" else model.head  # classifiers encode features
    try:
        denses = dense_modules(head)
    except ValueError as dense_error:
        try:
            return [standalone_head(model, normalize=False)], True
        except ValueError as error:
            raise ValueError(f"{dense_error} {error}") from error
    width = denses[-1].out_features if denses else model.feature_dim()
    if model.truncate_dim is not None and model.truncate_dim < width:
        denses.append(_slice(width, model.truncate_dim))
    return denses, False


def _slice(width: int, size: int) -> nn.Module:
    """A ``Dense`` that keeps the first ``size`` of ``width`` dimensions exactly (identity rows, zero bias)."""
    from sentence_transformers.sentence_transformer.modules import Dense

    weight = torch.eye(width)[:size].clone()
    return Dense(width, size, activation_function=nn.Identity(), init_weight=weight, init_bias=torch.zeros(size))


def dense_modules(head: nn.Module | None) -> list[nn.Module]:
    """sentence-transformers ``Dense`` modules that compute what ``head`` computes (in eval mode).

    The head's leaf modules, in order, must read ``(Linear [BatchNorm1d] [activation] [Dropout])*``; each group
    becomes one ``Dense`` with the BatchNorm folded into its weights. The result is checked on random inputs, so
    a head whose forward is not that chain (a residual connection, a gate) raises instead of exporting wrongly.

    Raises:
        ValueError: the head has other layers, or its forward is not the chain of its layers.

    Example:
        >>> [type(m).__name__ for m in dense_modules(ProjectionHead(32, 8))]  # doctest: +SKIP
        ['Dense', 'Dense', 'Dense']
    """
    if head is None:
        return []
    from sentence_transformers.sentence_transformer.modules import Dense

    name = type(head).__name__
    denses = [
        Dense(linear.in_features, linear.out_features, activation_function=activation, init_weight=w, init_bias=b)
        for linear, norm, activation in _groups(head, name)
        for w, b in [_fold(linear, norm)]
    ]
    x = torch.randn(8, denses[0].in_features)
    was_training = head.training
    with torch.no_grad():
        expected = head.eval()(x)
        features = {"sentence_embedding": x}
        for dense in denses:
            features = dense(features)
    head.train(was_training)
    if not torch.allclose(features["sentence_embedding"], expected, atol=1e-5, rtol=1e-4):
        raise ValueError(
            f"The {name} head is not a plain chain of its layers (a residual connection or another branch?), so "
            "sentence-transformers' Dense modules cannot reproduce it exactly. Use format='onnx', or a "
            "'projection' / 'linear' head."
        )
    return denses


def _groups(head: nn.Module, name: str) -> list[tuple[nn.Linear, nn.BatchNorm1d | None, nn.Module]]:
    """(Linear, BatchNorm or None, activation) per Linear layer of the head, from its leaf modules in order."""
    groups: list[list] = []
    for layer in (m for m in head.modules() if not list(m.children())):
        if isinstance(layer, nn.Linear):
            groups.append([layer, None, nn.Identity()])
        elif isinstance(layer, nn.Dropout):
            continue  # no-op in eval mode
        elif not groups:
            raise ValueError(
                f"The {name} head starts with {type(layer).__name__}; sentence-transformers' Dense modules start "
                "with a Linear layer. Use format='onnx'."
            )
        elif isinstance(layer, nn.BatchNorm1d) and groups[-1][1] is None and isinstance(groups[-1][2], nn.Identity):
            groups[-1][1] = layer
        elif isinstance(layer, _ACTIVATIONS) and isinstance(groups[-1][2], nn.Identity) and _default(layer):
            groups[-1][2] = type(layer)()
        else:
            raise ValueError(
                f"The {name} head has a {layer!r} where sentence-transformers' Dense modules can only hold "
                "Linear -> [BatchNorm1d] -> [activation with default settings]. Use format='onnx'."
            )
    if not groups:
        raise ValueError(f"The {name} head has no Linear layer to map onto sentence-transformers' Dense modules.")
    return [tuple(group) for group in groups]


def _default(activation: nn.Module) -> bool:
    """True when ``activation`` has its class's default settings (Dense saves only the class name)."""
    return activation.extra_repr() == type(activation)().extra_repr()


def _fold(linear: nn.Linear, norm: nn.BatchNorm1d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of ``norm(linear(x))`` as one Linear (BatchNorm in eval mode), computed in float64."""
    weight = linear.weight.detach().double()
    bias = linear.bias.detach().double() if linear.bias is not None else torch.zeros(linear.out_features).double()
    if norm is not None:
        scale = torch.ones_like(norm.running_var).double() if norm.weight is None else norm.weight.detach().double()
        shift = torch.zeros_like(scale) if norm.bias is None else norm.bias.detach().double()
        if norm.running_var is None:
            raise ValueError("A BatchNorm1d without running statistics cannot be folded; use format='onnx'.")
        factor = scale / torch.sqrt(norm.running_var.double() + norm.eps)
        weight = weight * factor[:, None]
        bias = (bias - norm.running_mean.double()) * factor + shift
    return weight.float().clone(), bias.float().clone()

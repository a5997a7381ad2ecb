"""``TailoredModel`` (backbone -> pool -> head), ``attach`` and ``to_embedding_model``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from finetuner.tailor._inputs import Inputs, make_inputs
from finetuner.tailor._trace import trace
from finetuner.tailor.freezing import Layers
from finetuner.tailor.freezing import freeze as freeze_layers
from finetuner.tailor.heads import Head, check_head, create_head
from finetuner.tailor.inspection import capture, find_embedding
from finetuner.tailor.pooling import FeaturePool
from finetuner.tailor.surgery import chop_in_place


class TailoredModel(nn.Module):
    """A chopped backbone, a pooling step to ``(B, D)`` and an optional head.

    ``features(inputs) = pool(backbone(inputs))``; ``forward(inputs) = head(features)``, or the features when
    there is no head. ``inputs`` is a tensor, or a dict of tensors passed to the backbone as keyword arguments;
    the model is called the way its original was: ``model(pixels)``, ``model(inputs_dict)`` or, for a Hugging
    Face backbone, ``model(**tokenizer(...))``. ``embedding_layer`` records where the original model was cut
    (``None`` when unknown).

    Example:
        >>> emb = to_embedding_model(AutoModel.from_pretrained(folder), example_input=dict(batch))  # doctest: +SKIP
        >>> emb(**batch).shape  # doctest: +SKIP
        torch.Size([2, 384])
    """

    def __init__(self, backbone: nn.Module, pool: nn.Module, head: Head | None = None):
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.head = head
        self.embedding_layer: str | None = None

    def features(self, inputs: Inputs | None = None, **keyword_inputs: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled output, ``(B, D)``: what the head sees."""
        inputs = _one_input(inputs, keyword_inputs)
        output = self.backbone(**inputs) if isinstance(inputs, Mapping) else self.backbone(inputs)
        return self.pool(output)

    def forward(self, inputs: Inputs | None = None, **keyword_inputs: torch.Tensor) -> torch.Tensor:
        features = self.features(inputs, **keyword_inputs)
        return self.head(features) if self.head is not None else features


def output_width(model: nn.Module, fn: Callable[[Inputs], torch.Tensor], example_input: Inputs) -> int:
    """The size of ``fn(example_input)``'s last dimension, run in eval mode without gradients on ``model``'s device
    (``model``'s train/eval mode is restored).

    Example:
        >>> output_width(emb, emb.features, torch.zeros(2, 3, 32, 32))  # doctest: +SKIP
        512
    """
    from finetuner.core.device import move_to

    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        outputs = fn(move_to(example_input, device))
    model.train(was_training)
    return int(outputs.shape[-1])


def _one_input(inputs: Inputs | None, keyword_inputs: dict[str, torch.Tensor]) -> Inputs:
    """The positional input, or the keyword inputs as one dict (``model(**tokenizer(texts))``), not both."""
    if keyword_inputs and inputs is not None:
        raise TypeError("Call the model with one input (a tensor or a dict) or with keyword tensors, not both.")
    if inputs is None and not keyword_inputs:
        raise TypeError("The model needs an input: a tensor, a dict of tensors, or keyword tensors.")
    return keyword_inputs if keyword_inputs else inputs


def attach(model: nn.Module, head: Head | None) -> TailoredModel:
    """Put ``head`` on top of ``model`` (not copied): ``TailoredModel(model, FeaturePool(), head)``.

    A ``TailoredModel`` keeps its backbone and pool and gets ``head`` instead of its own (a new ``TailoredModel``
    sharing them is returned).

    Raises:
        ValueError: ``head`` is a plain ``nn.Module``, not a `Head` (it could not be saved).
    """
    if head is not None:
        check_head(head)
    if isinstance(model, TailoredModel):
        tailored = TailoredModel(model.backbone, model.pool, head)
        tailored.embedding_layer = model.embedding_layer
        return tailored
    return TailoredModel(model, FeaturePool(), head)


def to_embedding_model(
    model: nn.Module,
    layer_name: str | None = None,
    freeze: Layers = False,
    output_dim: int | None = None,
    input_size: int | Sequence[int] | None = None,
    example_input: Inputs | None = None,
    head: str | Head = "projection",
    normalize: bool = False,
) -> TailoredModel:
    """Turn any model into an embedding model: chop, pool to ``(B, D)``, freeze, attach a head.

    The input model is not modified (the result is built from a copy).

    Args:
        model: any ``nn.Module``.
        layer_name: where to cut; ``default_embedding_layer(model)`` when None (the layer feeding the
            classifier), with the pooling that reproduces the classifier's input (e.g. the class token).
        freeze: ``True`` freezes the whole backbone; names / prefixes of the original model freeze only those
            (see ``finetuner.tailor.freeze``); ``False`` trains everything.
        output_dim: size of the output; attaches ``head`` with this size. ``None``: no head, the output is the
            ``(B, D)`` features.
        input_size: shape of one sample without the batch dimension (image models: guessed when omitted).
        example_input: an input the model accepts (a dict of tensors for text models).
        head: a name from ``list_heads()``: ``"projection"`` (``ProjectionHead(D, output_dim)``, three Linear
            layers), ``"linear"`` (``LinearHead``), ...; or a `Head` taking ``(B, D)`` (used as is, whatever
            ``output_dim``). A plain ``nn.Module`` is refused: subclass `Head` so the model can be saved.
        normalize: L2-normalise the head's output.

    Returns:
        A ``TailoredModel`` whose ``embedding_layer`` is the layer it was cut at.

    Raises:
        ValueError: ``freeze=True`` without a head (nothing would be trained), ``normalize=True`` without a head,
            an unknown layer or head name, a head that is not a `Head`.

    Example:
        >>> resnet = torchvision.models.resnet18()
        >>> model = to_embedding_model(resnet, freeze=True, output_dim=128, input_size=(3, 64, 64))
        >>> model(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 128])
    """
    check_head(head)
    has_head = isinstance(head, Head) or output_dim is not None
    if freeze is True and not has_head:
        raise ValueError(
            "freeze=True with output_dim=None leaves nothing to train: set output_dim to attach a trainable head, "
            "or freeze fewer layers (a list of layer names)."
        )
    if normalize and not has_head:
        raise ValueError("normalize=True needs a head: set output_dim (EmbeddingModel.encode normalises anyway).")
    if isinstance(head, Head) and normalize:
        raise ValueError("normalize=True applies to heads built by name; normalise inside your own head.")

    inputs = make_inputs(model, input_size, example_input)
    mode = "auto"
    if layer_name is None:
        layer_name, mode = find_embedding(*trace(model, inputs, on_output=capture))
    work = copy.deepcopy(model)
    if freeze is not True:
        freeze_layers(work, freeze)  # names of the original model, before chopping renames anything
    backbone, output = chop_in_place(work, layer_name, inputs)
    if freeze is True:
        freeze_layers(backbone)
    pool = FeaturePool(mode)
    dim = pool(output).shape[-1]
    options = {"normalize": True} if normalize else {}  # only heads that normalise take the option
    head_module = create_head(head, dim, output_dim, **options) if has_head else None
    tailored = TailoredModel(backbone, pool, head_module)
    tailored.embedding_layer = layer_name
    tailored.train(model.training)
    return tailored

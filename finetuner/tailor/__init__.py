"""Model surgery on any ``nn.Module``: inspect it, chop it at a layer, freeze it, put a head on it.

Example:
    >>> from finetuner import tailor
    >>> tailor.display(model, input_size=(3, 224, 224))          # names, shapes, params, dense layers
    >>> body = tailor.chop(model, "layer3")                       # a copy that stops after layer3
    >>> emb = tailor.to_embedding_model(model, freeze=True, output_dim=128)
"""

from finetuner.tailor.blocks import find_blocks, first_blocks
from finetuner.tailor.freezing import (
    check_freeze,
    count_parameters,
    freeze,
    is_frozen,
    resolve_freeze,
    trainable_parameters,
    unfreeze,
)
from finetuner.tailor.heads import (
    ClassificationHead,
    Head,
    LinearHead,
    ProjectionHead,
    ResidualProjectionHead,
    check_head,
    create_head,
    head_from_config,
    list_heads,
)
from finetuner.tailor.inspection import LayerInfo, default_embedding_layer, dense_layers, display, summary
from finetuner.tailor.multilayer import LayerFeatures, layer_features
from finetuner.tailor.pooling import FeaturePool
from finetuner.tailor.surgery import EarlyExit, Removed, chop
from finetuner.tailor.tailored import TailoredModel, attach, output_width, to_embedding_model

__all__ = [
    "ClassificationHead",
    "EarlyExit",
    "FeaturePool",
    "Head",
    "LayerFeatures",
    "LayerInfo",
    "LinearHead",
    "ProjectionHead",
    "Removed",
    "ResidualProjectionHead",
    "TailoredModel",
    "attach",
    "check_freeze",
    "check_head",
    "chop",
    "count_parameters",
    "create_head",
    "default_embedding_layer",
    "dense_layers",
    "display",
    "find_blocks",
    "first_blocks",
    "freeze",
    "head_from_config",
    "is_frozen",
    "list_heads",
    "output_width",
    "layer_features",
    "resolve_freeze",
    "summary",
    "to_embedding_model",
    "trainable_parameters",
    "unfreeze",
]

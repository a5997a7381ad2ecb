"""Heads for a tailored backbone: the `Head` contract, its registry, and the built-in heads.

Adding a head is one module here (a `Head` subclass, imported below) and its test; a head defined anywhere else
(a user's script) registers itself the same way when its class is defined.
"""

from finetuner.tailor.heads.base import Head, check_head, create_head, head_from_config, list_heads
from finetuner.tailor.heads.classification import ClassificationHead
from finetuner.tailor.heads.linear import LinearHead
from finetuner.tailor.heads.projection import ProjectionHead
from finetuner.tailor.heads.residual import ResidualProjectionHead

__all__ = [
    "ClassificationHead",
    "Head",
    "LinearHead",
    "ProjectionHead",
    "ResidualProjectionHead",
    "check_head",
    "create_head",
    "head_from_config",
    "list_heads",
]

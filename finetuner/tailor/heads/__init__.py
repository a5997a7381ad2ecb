"""Heads for a tailored backbone: the `Head` contract, its registry, and the built-in heads.

Adding a head is one module here (a `Head` subclass) and its test: `HEADS` imports every module of this folder on
its first lookup. A head defined anywhere else (a user's script) registers itself the same way when its class is
defined. The imports below only make the built-in classes importable from the package.
"""

from finetuner.tailor.heads.base import HEADS, Head, check_head, create_head, head_from_config, list_heads
from finetuner.tailor.heads.classification import ClassificationHead
from finetuner.tailor.heads.linear import LinearHead
from finetuner.tailor.heads.projection import ProjectionHead
from finetuner.tailor.heads.residual import ResidualProjectionHead

__all__ = [
    "HEADS",
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

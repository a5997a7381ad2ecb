"""finetuner_head.py: a finetuner head in plain PyTorch, written beside exported weights; it never imports finetuner.

finetuner's exporters copy this file into the folders they write (``timm``, ``sentence-transformers`` when the head
is not a chain of ``Dense`` modules), next to ``head.json`` (the head's settings) and ``head.safetensors`` (its
weights). It rebuilds the built-in heads (``LinearHead``, ``ProjectionHead``, ``ResidualProjectionHead``,
``ClassificationHead``) under the same parameter names, so the weights load strictly; finetuner's tests check it
gives the same outputs as finetuner's own heads. Use it in plain PyTorch::

    from finetuner_head import FinetunerHead
    head = FinetunerHead.load("path/to/folder")   # reads head.json and head.safetensors
    embeddings = head(features)                   # (B, D) backbone features -> what model.encode returns

or, in a sentence-transformers folder, through ``SentenceTransformer(folder, trust_remote_code=True)``, which
calls it on the ``sentence_embedding`` entry of its features.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CONFIG_FILE = "head.json"
WEIGHTS_FILE = "head.safetensors"


def _core(config: dict[str, Any] | None) -> nn.Module:
    """The head's layers, named as finetuner names them (None: no head, the features themselves)."""
    if config is None:
        return nn.Identity()
    kind = config["type"]
    if kind == "LinearHead":
        return _Linear(config["in_features"], config["out_features"], config.get("normalize", False))
    if kind == "ProjectionHead":
        return _Projection(config)
    if kind == "ResidualProjectionHead":
        return _Residual(config)
    if kind == "ClassificationHead":
        return nn.Linear(config["in_features"], config["num_classes"])
    raise ValueError(f"finetuner_head.py does not know the head type {kind!r}.")


class _Linear(nn.Module):
    """``linear(x)``, L2-normalised when ``normalize``."""

    def __init__(self, in_features: int, out_features: int, normalize: bool) -> None:
        super().__init__()
        self.linear, self.normalize = nn.Linear(in_features, out_features), normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return F.normalize(x, dim=-1) if self.normalize else x


class _Projection(nn.Module):
    """``(Linear -> BatchNorm1d -> ReLU) x (num_layers - 1) -> Linear``, L2-normalised when ``normalize``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        hidden, width, layers = config["hidden_features"], config["in_features"], []
        for _ in range(config["num_layers"] - 1):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, config["out_features"]))
        self.layers, self.normalize = nn.Sequential(*layers), config.get("normalize", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        return F.normalize(x, dim=-1) if self.normalize else x


class _Residual(nn.Module):
    """``linear(x) + residual_scale * (Linear -> GELU -> Linear)(LayerNorm(x))``, L2-normalised when ``normalize``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        features, hidden, out = config["in_features"], config["hidden_features"], config["out_features"]
        self.linear = nn.Linear(features, out)
        self.residual = nn.Sequential(
            nn.LayerNorm(features), nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, out)
        )
        self.scale, self.normalize = float(config["residual_scale"]), config.get("normalize", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x) + self.scale * self.residual(x)
        return F.normalize(x, dim=-1) if self.normalize else x


class FinetunerHead(nn.Module):
    """``normalize(head(features)[:, :truncate_dim])``: what finetuner's ``model.encode`` computes from features.

    Args:
        head: the head's settings, as finetuner saves them (``{"type": "ResidualProjectionHead", ...}``); None:
            no head (the features, truncated and normalised).
        truncate_dim: keep the first dimensions (Matryoshka), None: all.
        normalize: L2-normalise the result (after truncation).

    Called on a tensor it returns a tensor; called on a dict (sentence-transformers) it replaces the dict's
    ``sentence_embedding``.
    """

    def __init__(self, head: dict[str, Any] | None, truncate_dim: int | None = None, normalize: bool = True) -> None:
        super().__init__()
        self.head_config = dict(head) if head is not None else None
        self.truncate_dim, self.normalize = truncate_dim, normalize
        self.core = _core(self.head_config)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        x = self.core(features)
        if self.truncate_dim is not None:
            x = x[:, : self.truncate_dim]
        return F.normalize(x, dim=-1) if self.normalize else x

    def forward(self, features: Any) -> Any:
        if isinstance(features, Mapping):  # sentence-transformers passes a dict-like batch
            features["sentence_embedding"] = self.embed(features["sentence_embedding"])
            return features
        return self.embed(features)

    def config(self) -> dict[str, Any]:
        return {"head": self.head_config, "truncate_dim": self.truncate_dim, "normalize": self.normalize}

    def save(self, folder: str) -> None:
        """Write ``head.json`` and ``head.safetensors`` into ``folder``."""
        from safetensors.torch import save_file

        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, CONFIG_FILE), "w") as file:
            json.dump(self.config(), file, indent=2)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, os.path.join(folder, WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: str) -> FinetunerHead:
        """Rebuild the head from ``folder``'s ``head.json`` and ``head.safetensors``, in eval mode."""
        from safetensors.torch import load_file

        with open(os.path.join(folder, CONFIG_FILE)) as file:
            head = cls(**json.load(file))
        head.load_state_dict(load_file(os.path.join(folder, WEIGHTS_FILE)), strict=True)
        return head.eval()

"""`CachedLoss`: any pair loss over a large batch on the memory of a small one (GradCache, Gao et al., 2021).

In-batch-negative losses (InfoNCE, CLIP) get better with bigger batches, but their batch cannot be split into
independent parts the way gradient accumulation splits a mean loss. GradCache splits the *model* instead:

1. embed the batch ``mini_batch_size`` items at a time without a graph;
2. compute the loss on those embeddings and its gradient with respect to each embedding (cached);
3. when the trainer calls ``backward()``, embed each chunk again, now with a graph, and back-propagate the cached
   gradient through it (with the random state of step 1, so dropout draws the same masks).

The model's gradients equal those of the plain large batch; only one chunk's activations live at a time.
Layers that mix the rows of a batch are the exception: BatchNorm in training mode (the default projection head
has one) normalises each mini-batch with its own statistics. This follows sentence-transformers'
``CachedMultipleNegativesRankingLoss``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import get_device_states, set_device_states

from finetuner.training.pair_losses.base import PairLoss, create_pair_loss


class CachedLoss(PairLoss):
    """Wraps a pair loss so the model runs on at most ``mini_batch_size`` items at once (gradient caching).

    The trainer hands the loss the model and the batch (`PairLoss.forward_batch`); this loss runs the forward
    pass itself, in chunks. Called on embeddings, it is the wrapped loss.

    Args:
        loss: the pair loss to compute on the whole batch, or its name (``loss_options`` go to its constructor).
        mini_batch_size: items per forward pass: what bounds the activation memory.

    Example:
        >>> loss = CachedLoss("MultipleNegativesRankingLoss", mini_batch_size=8)
        >>> model = torch.nn.Linear(4, 4)
        >>> value = loss.forward_batch(model, (torch.randn(32, 4), torch.randn(32, 4), None, None))
        >>> value.backward()
        >>> model.weight.grad.shape
        torch.Size([4, 4])
    """

    def __init__(
        self, loss: PairLoss | str = "MultipleNegativesRankingLoss", mini_batch_size: int = 32, **loss_options: Any
    ):
        super().__init__()
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) or mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be a positive number of items, got {mini_batch_size!r}.")
        self.loss = create_pair_loss(loss, **loss_options) if isinstance(loss, str) else loss
        if not isinstance(self.loss, PairLoss):
            raise ValueError(
                f"CachedLoss wraps a pair loss, got {type(self.loss).__name__}: use gradient_accumulation_steps for "
                "losses on labelled data."
            )
        self.mini_batch_size = mini_batch_size
        self.uses_scores, self.uses_negatives = self.loss.uses_scores, self.loss.uses_negatives

    def compute_loss(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        scores: torch.Tensor | None,
        negatives: torch.Tensor | None,
    ) -> torch.Tensor:
        """The wrapped loss on whole-batch embeddings."""
        return self.loss(query_embeddings, document_embeddings, scores, negatives)

    def forward_batch(self, model: nn.Module, batch: Sequence[Any]) -> torch.Tensor:
        """Steps 1 and 2 now; step 3 runs from a hook when ``backward()`` reaches the returned loss."""
        queries, documents, scores, negatives = batch
        columns = [queries, documents] + ([negatives] if negatives is not None else [])
        chunks = [split(column, self.mini_batch_size) for column in columns]
        states: list[list[RandomState]] = [[] for _ in chunks]
        buffers = [buffer.clone() for buffer in model.buffers()]
        with torch.no_grad():
            embeddings = []
            for column, column_states in zip(chunks, states):
                outputs = []
                for chunk in column:
                    column_states.append(RandomState(chunk))
                    outputs.append(model(chunk).float())
                embeddings.append(torch.cat(outputs))
            # the replay in step 3 updates BatchNorm statistics: step 1 must not update them too
            for buffer, saved in zip(model.buffers(), buffers):
                buffer.copy_(saved)
        leaves = [embedding.requires_grad_() for embedding in embeddings]
        parameters = [p for p in self.parameters() if p.requires_grad]  # CLIP's temperature
        with torch.enable_grad():
            loss = self(leaves[0], leaves[1], scores, leaves[2] if negatives is not None else None)
            gradients = torch.autograd.grad(loss, leaves + parameters)
        cached = [gradient.split(self.mini_batch_size) for gradient in gradients[: len(leaves)]]
        device_type = leaves[0].device.type
        replay = partial(
            _replay,
            model=model,
            chunks=chunks,
            states=states,
            cached=cached,
            parameters=list(zip(parameters, gradients[len(leaves) :])),
            autocast=(device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)),
        )
        result = loss.detach().requires_grad_()
        result.register_hook(replay)
        return result


def _replay(
    scale: torch.Tensor,
    *,
    model: nn.Module,
    chunks: list[list[Any]],
    states: list[list[RandomState]],
    cached: list[tuple[torch.Tensor, ...]],
    parameters: list[tuple[nn.Parameter, torch.Tensor]],
    autocast: tuple[str, bool, torch.dtype],
) -> None:
    """Step 3: ``scale`` is the gradient reaching the loss (the fp16 loss scale over the accumulation steps),
    applied to every cached gradient, so the model's gradients are those of ``scale * loss``."""
    for parameter, gradient in parameters:
        parameter.grad = scale * gradient if parameter.grad is None else parameter.grad + scale * gradient
    device_type, enabled, dtype = autocast
    with torch.enable_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
        for column, column_states, column_gradients in zip(chunks, states, cached):
            for chunk, state, gradient in zip(column, column_states, column_gradients):
                with state.replay():
                    outputs = model(chunk).float()
                torch.autograd.backward(outputs, scale * gradient)


def split(inputs: Any, size: int) -> list[Any]:
    """Model inputs (a tensor, or a dict of tensors as text models take) in chunks of ``size`` rows.

    Example:
        >>> [chunk["ids"].shape[0] for chunk in split({"ids": torch.zeros(5, 3)}, 2)]
        [2, 2, 1]
    """
    if isinstance(inputs, torch.Tensor):
        return list(inputs.split(size))
    if isinstance(inputs, dict):
        rows = len(next(iter(inputs.values())))
        return [{k: v[start : start + size] for k, v in inputs.items()} for start in range(0, rows, size)]
    raise ValueError(f"CachedLoss splits tensors or dicts of tensors into mini-batches, got {type(inputs).__name__}.")


class RandomState:
    """The CPU and CUDA random states just before a chunk is first embedded, replayed for its second pass."""

    def __init__(self, inputs: Any):
        tensors = list(inputs.values()) if isinstance(inputs, dict) else [inputs]
        self.cpu = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)

    @contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block with the recorded random state; the generators outside are left as they were."""
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            set_device_states(self.devices, self.device_states)
            yield


class CachedMultipleNegativesRankingLoss(CachedLoss, aliases=("CachedInfoNCELoss",)):
    """`MultipleNegativesRankingLoss` with gradient caching (sentence-transformers' name).

    Example:
        >>> loss = build_loss("CachedMultipleNegativesRankingLoss", mini_batch_size=64, scale=20.0)  # doctest: +SKIP
    """

    uses_negatives = True

    def __init__(self, mini_batch_size: int = 32, **loss_options: Any):
        super().__init__("MultipleNegativesRankingLoss", mini_batch_size, **loss_options)


class CachedCLIPLoss(CachedLoss):
    """`CLIPLoss` with gradient caching.

    Example:
        >>> loss = build_loss("CachedCLIPLoss", mini_batch_size=64)  # doctest: +SKIP
    """

    def __init__(self, mini_batch_size: int = 32, **loss_options: Any):
        super().__init__("CLIPLoss", mini_batch_size, **loss_options)

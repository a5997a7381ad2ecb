"""The loss and miner names `build_loss` / `build_miner` take from outside finetuner: pytorch-metric-learning's
losses and miners, and ``CrossEntropyLoss``. A pair loss may not take one of them (`PairLoss` refuses it when the
class is defined), so a name means one loss only."""

from __future__ import annotations

from functools import cache

CLASSIFICATION_LOSSES = ("CrossEntropyLoss",)


@cache
def pml_names(kind: str) -> tuple[str, ...]:
    """pytorch-metric-learning's ``"losses"`` or ``"miners"`` by class name, sorted (imports the library: ~1 s).

    Example:
        >>> "TripletMarginLoss" in pml_names("losses"), "MultiSimilarityMiner" in pml_names("miners")
        (True, True)
    """
    from importlib import import_module

    module = import_module(f"pytorch_metric_learning.{kind}")
    suffix = {"losses": "Loss", "miners": "Miner"}[kind]
    return tuple(sorted(n for n in dir(module) if n.endswith(suffix) and not n.startswith(("Base", "Generic"))))

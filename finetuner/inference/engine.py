"""The engine of frozen work: a function whose weights never change (a frozen backbone's features), run in
onnxruntime rather than PyTorch when that gives the same outputs.

`OnnxFunction` traces the function to ONNX at its first batch (once per fingerprint and input signature: the file
is kept, and read back by later passes), checks onnxruntime against PyTorch on that batch's first `CHECK_ROWS`
rows, and runs onnxruntime from then on. When export or check fails it logs one line and stays in PyTorch. The
check accepts a largest absolute difference of ``1e-4 * max(1, max|reference|)``, the reference computed in
float32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from finetuner.core.files import atomic_file
from finetuner.inference.onnx_graph import OUTPUT_NAME, dynamic_axes, max_abs_diff, trace_to_onnx

logger = logging.getLogger("finetuner")

ENGINES = ("auto", "torch", "onnxruntime")
RELATIVE_TOLERANCE = 1e-4
CHECK_ROWS = 8  # rows of the first batch that are traced and checked against PyTorch
_SESSIONS: dict[tuple[str, str], Any] = {}  # graph file and providers -> session, so repeated passes load once
_REFUSED: dict[str, str] = {}  # graph files `frozen_function` found wanting in this process: tried and logged once
_CHECKED: set[tuple[str, str]] = set()  # sessions (as `_SESSIONS` keys them) that passed the check in this process


def check_engine(engine: str, option: str = "engine") -> str:
    """``engine`` if it names an engine, else a ValueError (about the ``option`` of that name) that lists them.

    Example:
        >>> check_engine("auto")
        'auto'
    """
    if engine not in ENGINES:
        raise ValueError(
            f"{option} must be one of {list(ENGINES)}, got {engine!r}: 'auto' runs a frozen backbone in onnxruntime "
            "where it reproduces PyTorch (on the CPU), 'torch' always in PyTorch, 'onnxruntime' asks for onnxruntime."
        )
    return engine


def planned_engine(engine: str, device: torch.device) -> str:
    """What ``engine`` runs on ``device`` unless the parity check refuses: ``"onnxruntime"`` on the CPU (and on
    CUDA where onnxruntime has its CUDA provider), else ``"torch"``.

    Example:
        >>> planned_engine("auto", torch.device("cpu"))
        'onnxruntime'
    """
    if check_engine(engine) == "torch" or not _providers(device):
        if engine == "onnxruntime":
            logger.info("onnxruntime cannot run on %s here: frozen features run in PyTorch", device)
        return "torch"
    return "onnxruntime"


def _session_key(file: Path, device: torch.device) -> tuple[str, str]:
    """What identifies an onnxruntime session: the graph file (path and modification time) and the providers."""
    return f"{file.resolve()}:{file.stat().st_mtime_ns}", json.dumps(_providers(device))


def _providers(device: torch.device) -> list[Any]:
    """onnxruntime's execution providers for ``device``; empty where it has none."""
    import onnxruntime as ort

    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return []


def frozen_function(
    fn: Callable[[Any], Tensor], fingerprint: str, folder: Path, *, device: torch.device, engine: str = "auto"
) -> Callable[[Any], Tensor]:
    """``fn`` (fixed weights, identified by ``fingerprint``) in the engine ``engine`` plans on ``device``: an
    `OnnxFunction` (checked on its first batch, PyTorch after one log line when that fails) or ``fn`` itself.
    Failures are remembered for the process, so a function that cannot be exported is tried once.

    Example:
        >>> run = frozen_function(model.features, fingerprint, Path("cache/onnx"), device=torch.device("cpu"))
        >>> features = run(images)  # doctest: +SKIP
    """
    if planned_engine(engine, device) == "torch":
        return fn
    return OnnxFunction(fn, fingerprint, folder, device=device, refused=_REFUSED, explicit=engine == "onnxruntime")


class NotTraceableError(RuntimeError):
    """The function cannot be traced faithfully (its forward branches on tensor values)."""


class OnnxFunction:
    """``fn`` (inputs -> ``(B, D)`` tensor, fixed weights) run in onnxruntime after a check against PyTorch.

    Args:
        fn: the function, e.g. ``model.features`` of a frozen model in eval mode.
        fingerprint: what identifies ``fn``'s weights and computation (e.g. `fingerprint_features`).
        folder: where the ONNX files go, one per fingerprint and input signature.
        device: the device of the inputs.
        refused: reasons for the functions (by file name) that failed export or check, shared by the passes of a
            run so each failure is logged once.
        explicit: the user asked for onnxruntime (a failure is then logged as a warning, else as info).

    After the first call, ``engine`` says which one ran: ``"onnxruntime"`` or ``"torch"``.

    Example:
        >>> run = OnnxFunction(model.features, fingerprint, Path("cache/onnx"), device=torch.device("cpu"))
        >>> features = run(images)  # doctest: +SKIP
    """

    def __init__(
        self,
        fn: Callable[[Any], Tensor],
        fingerprint: str,
        folder: Path,
        *,
        device: torch.device,
        refused: MutableMapping[str, str] | None = None,
        explicit: bool = False,
    ) -> None:
        self.fn, self.fingerprint, self.folder, self.device = fn, fingerprint, Path(folder), device
        self.refused = {} if refused is None else refused
        self.explicit = explicit
        self.engine: str | None = None
        self._session: Any = None
        self._names: list[str] = []
        self._file = Path()

    def __call__(self, inputs: Tensor | Mapping[str, Tensor]) -> Tensor:
        if self.engine == "torch":
            return self.fn(inputs)
        if self.engine is None:
            return self._first(inputs)
        try:
            return self._run(inputs)
        except Exception as error:  # e.g. a shape the trace fixed: this batch and the rest in PyTorch
            self._refuse(f"onnxruntime failed on inputs of another shape: {_reason(error)}")
            return self.fn(inputs)

    def _first(self, inputs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Export (or load), check against PyTorch on this batch, and choose the engine for the rest. A graph that
        passed the check earlier in this process (the test pass after the training pass) is not checked again."""
        file = self.folder / f"{self._file_key(inputs)}.onnx"
        reason = self.refused.get(file.name)
        if reason is None and not (file.is_file() and _session_key(file, self.device) in _CHECKED):
            reason = self._check(file, _rows(inputs, CHECK_ROWS))  # a few rows are enough to trace and compare
        if reason is not None:
            self.engine = "torch"
            return self.fn(inputs)
        self._session = self._load(file, inputs)  # the session of the check, kept for the process
        self.engine, self._file = "onnxruntime", file
        _CHECKED.add(_session_key(file, self.device))
        return self._run(inputs).to(self.device)

    def _check(self, file: Path, sample: Tensor | Mapping[str, Tensor]) -> str | None:
        """Export ``file`` (unless kept) and compare onnxruntime with PyTorch on ``sample``: None when they agree,
        else the reason, logged once (`_refuse`)."""
        with torch.autocast(self.device.type, enabled=False):
            reference = self.fn(sample).float()
        try:
            self._session = self._load(file, sample)
            got = self._run(sample)
        except Exception as error:  # the exporter and onnxruntime raise many types
            reason: str | None = _reason(error)
        else:
            diff, bound = max_abs_diff(got.numpy(), reference.cpu().numpy()), _bound(reference)
            differs = f"onnxruntime differs from PyTorch by {diff:.3g} (tolerance {bound:.3g})"
            reason = None if diff <= bound else differs
        if reason is not None:
            self._file = file
            self._refuse(reason)
        return reason

    def _refuse(self, reason: str) -> None:
        """Stay in PyTorch from now on, and say why (once per graph file: later passes do not try again)."""
        self.refused[self._file.name] = reason
        self.engine, self._session = "torch", None
        self._file.unlink(missing_ok=True)  # an export that was refused is not kept
        log = logger.warning if self.explicit else logger.info
        log("frozen features run in PyTorch, not onnxruntime: %s", reason)

    def _file_key(self, inputs: Tensor | Mapping[str, Tensor]) -> str:
        """The fingerprint with the inputs' names, dtypes and fixed dimensions (the batch, and a text's sequence,
        are dynamic)."""
        tensors = inputs if isinstance(inputs, Mapping) else {"input": inputs}
        fixed = 2 if isinstance(inputs, Mapping) else 1
        signature = {name: [str(t.dtype), list(t.shape[fixed:])] for name, t in tensors.items()}
        text = json.dumps({"fn": self.fingerprint, "inputs": signature, "torch": torch.__version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _load(self, file: Path, inputs: Tensor | Mapping[str, Tensor]) -> Any:
        import onnxruntime as ort

        is_dict = isinstance(inputs, Mapping)
        self._names = list(inputs) if is_dict else ["input"]
        if not file.is_file():
            args = tuple(_example(t) for t in (inputs.values() if is_dict else [inputs]))
            module = _Function(self.fn, self._names if is_dict else None)
            with atomic_file(file) as staging:
                _trace_checked(module, args, staging, self._names, dynamic_axes(self._names, args, is_dict))
        providers = _providers(self.device)
        key = _session_key(file, self.device)
        if key not in _SESSIONS:
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # as PyTorch would (1 per process under torchrun)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            # no busy-waiting between batches: the DataLoader workers decoding the next batch need those cores
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            while len(_SESSIONS) >= 8:  # a few graphs at a time (a model's features, a probe's layers)
                _SESSIONS.pop(next(iter(_SESSIONS)))
            _SESSIONS[key] = ort.InferenceSession(str(file), options, providers=providers)
        return _SESSIONS[key]

    def _run(self, inputs: Tensor | Mapping[str, Tensor]) -> Tensor:
        tensors = inputs if isinstance(inputs, Mapping) else {"input": inputs}
        graph_inputs = {i.name for i in self._session.get_inputs()}
        feed = {name: _numpy(tensors[name]) for name in self._names if name in graph_inputs}
        return torch.from_numpy(self._session.run([OUTPUT_NAME], feed)[0])


class _Function(nn.Module):
    """A function of one tensor, or of a dict of tensors given positionally in ``names``' order, as a module.

    The modules the function reaches (itself, a bound method's module, those its closures hold) are registered, so
    their weights are the graph's named initializers rather than constants (which tracing refuses for weights that
    require grad).
    """

    def __init__(self, fn: Callable[[Any], Tensor], names: list[str] | None) -> None:
        super().__init__()
        self.names = names
        self.owners = nn.ModuleList(dict.fromkeys(_modules_in(fn)))
        self.__dict__["fn"] = fn  # not as a submodule: `owners` holds the modules

    def forward(self, *tensors: Tensor) -> Tensor:
        return self.fn(dict(zip(self.names, tensors)) if self.names is not None else tensors[0])


def _modules_in(fn: Any, depth: int = 4) -> Iterator[nn.Module]:
    """The outermost modules ``fn`` reaches: itself, a bound method's owner, the contents of its closures."""
    if isinstance(fn, nn.Module):
        yield fn
    elif isinstance(getattr(fn, "__self__", None), nn.Module):
        yield fn.__self__
    elif depth > 0:
        for cell in getattr(fn, "__closure__", None) or ():
            if callable(cell.cell_contents):
                yield from _modules_in(cell.cell_contents, depth - 1)


def _trace_checked(
    module: nn.Module, args: tuple[Tensor, ...], file: Path, names: list[str], axes: dict[str, dict[int, str]]
) -> None:
    """Trace ``module`` into ``file``; when tracing warns that a tensor became a Python value, ask torch.export
    whether that value depends on the data (a branch the trace would fix) rather than on shapes only."""
    modes = {m: m.training for m in module.modules()}  # the exporter leaves a new wrapper's (train) mode behind
    try:
        with torch.inference_mode(False), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            trace_to_onnx(module, args, file, names, dynamic_axes=axes)
            if any(issubclass(w.category, torch.jit.TracerWarning) for w in caught):
                _refuse_data_dependent(module, args)
    finally:
        for m, training in modes.items():
            m.training = training


def _refuse_data_dependent(module: nn.Module, args: tuple[Tensor, ...]) -> None:
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    batch = torch.export.Dim("batch")
    # torch.export puts copies of some attributes back (a dict a hook writes to, say): keep the originals
    attributes = {m: dict(m.__dict__) for m in module.modules()}
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.CRITICAL + 1)  # what torch.export cannot do is our answer, not the user's problem
    try:
        torch.export.export(module, args, dynamic_shapes=(tuple({0: batch} for _ in args),), strict=False)
    except Exception as error:  # anything else torch.export cannot do says nothing about the trace
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, GuardOnDataDependentSymNode):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise NotTraceableError(
                "the forward branches on tensor values (data-dependent control flow), which a trace fixes to one "
                "branch"
            ) from error
    finally:
        torch_logger.setLevel(level)
        for m, values in attributes.items():
            m.__dict__.clear()
            m.__dict__.update(values)


def _rows(inputs: Tensor | Mapping[str, Tensor], n: int) -> Tensor | Mapping[str, Tensor]:
    """The first ``n`` rows of a batch (of each tensor, for a dict of inputs)."""
    if isinstance(inputs, Mapping):
        return {name: tensor[:n] for name, tensor in inputs.items()}
    return inputs[:n]


def _example(tensor: Tensor) -> Tensor:
    """A normal (not inference-mode) float32 copy of ``tensor``, at least two rows (a batch of one would fix the
    batch axis)."""
    with torch.inference_mode(False):
        tensor = tensor.detach().clone()
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        return torch.cat([tensor, tensor]) if len(tensor) < 2 else tensor.contiguous()


def _reason(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _numpy(tensor: Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.is_floating_point() else tensor).contiguous().numpy()


def _bound(reference: Tensor) -> float:
    """The check's tolerance: relative to the outputs' scale, absolute below 1."""
    return RELATIVE_TOLERANCE * max(1.0, float(reference.abs().max())) if reference.numel() else RELATIVE_TOLERANCE

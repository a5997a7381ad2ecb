"""`OnnxEncoder`: run an exported ONNX file with onnxruntime, from raw images or texts, without PyTorch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.export.onnx_preprocessing import arrays_for

# ONNX metadata_props keys written by the "onnx" export format
PREPROCESSING_KEY = "finetuner.preprocessing"
NORMALIZED_KEY = "finetuner.normalized"
EMBEDDING_DIM_KEY = "finetuner.embedding_dim"
CLASSES_KEY = "finetuner.classes"  # a classifier's class names (JSON list), in the order of its logits
LOGITS_NAME = "logits"  # a classifier's second graph output

# onnxruntime's input type strings -> the numpy dtype to feed
_NUMPY_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


class OnnxEncoder:
    """Encode with an exported ONNX file through onnxruntime: no PyTorch, no finetuner model code.

    A file written by ``model.export(path, format="onnx")`` (or ``"onnx-int8"``) carries its preprocessing in its
    metadata, so `encode` takes raw items (image paths, PIL images, uint8 arrays, or texts) and returns what
    ``model.encode`` returns. Calling the encoder on a batch of model inputs returns the graph's raw output. A
    classifier's file also has its class names (`labels`) and logits, so `predict` returns ``model.predict``'s names.
    Uses the CUDA execution provider when onnxruntime has it (the ``onnxruntime-gpu`` package), else the CPU one.

    Args:
        path: the ``.onnx`` file (with its ``.data`` file next to it, if any).
        providers: onnxruntime execution providers, in order of preference; ``None`` picks as above.

    Example:
        >>> encoder = OnnxEncoder("out/model.onnx")
        >>> encoder.encode(["shoe.png", "bag.png"]).shape  # L2-normalised, as model.encode
        (2, 128)
        >>> encoder(np.zeros((4, 3, 224, 224), np.float32)).shape  # a preprocessed batch
        (4, 128)
    """

    def __init__(self, path: str | Path, *, providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No ONNX file at {self.path}; write one with model.export(path, format='onnx').")
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(self.path), providers=list(providers))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._dtypes = {i.name: _NUMPY_DTYPES.get(i.type) for i in self.session.get_inputs()}
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._arrays = None

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on."""
        return self.session.get_providers()

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """The preprocessing stored in the file (``kind``, sizes, mean/std or the tokenizer), or None."""
        text = self.metadata.get(PREPROCESSING_KEY)
        return json.loads(text) if text else None

    @property
    def normalized(self) -> bool:
        """True when the graph ends with L2 normalisation."""
        return self.metadata.get(NORMALIZED_KEY) == "true"

    @property
    def labels(self) -> list[str]:
        """A classifier's class names, in the order of its logits; empty for an embedding model."""
        text = self.metadata.get(CLASSES_KEY)
        return list(json.loads(text)) if text else []

    def predict(self, items: Sequence[Any], batch_size: int = 64) -> list[str]:
        """Class names for raw items, as ``model.predict`` gives them (classifiers only).

        Raises:
            ValueError: the file is not a classifier's (no class names or logits in it).

        Example:
            >>> OnnxEncoder("out/classifier.onnx").predict(["shoe.png"])  # doctest: +SKIP
            ['Sneaker']
        """
        labels = self.labels
        if not labels or LOGITS_NAME not in self.output_names:
            raise ValueError(
                f"{self.path} is not a classifier's export (no class names or logits): use encode(), or export a "
                "model fitted with task='classification'."
            )
        items, arrays = list(items), self._preprocessing()
        logits = [self.run(arrays(items[i : i + batch_size]), LOGITS_NAME) for i in range(0, len(items), batch_size)]
        return [labels[i] for i in np.concatenate(logits).argmax(axis=1)]

    def encode(self, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Embed raw items with the preprocessing stored in the file: float32 ``(N, D)``.

        Raises:
            ValueError: the file has no stored preprocessing (it was not written by ``model.export``).

        Example:
            >>> OnnxEncoder("out/text.onnx").encode(["a cat", "a dog"]).shape  # doctest: +SKIP
            (2, 32)
        """
        items, arrays = list(items), self._preprocessing()
        if not items:
            raise ValueError("encode() needs at least one item")
        batches = [self(arrays(items[i : i + batch_size])) for i in range(0, len(items), batch_size)]
        return np.concatenate(batches).astype(np.float32, copy=False)

    def _preprocessing(self) -> Any:
        if self._arrays is None:
            preprocessing = self.preprocessing
            if preprocessing is None:
                raise ValueError(
                    f"{self.path} carries no preprocessing: export it with model.export(path, format='onnx'), or "
                    "preprocess the items yourself and call the encoder on the batch."
                )
            self._arrays = arrays_for(preprocessing)
        return self._arrays

    def __call__(self, inputs: Any) -> np.ndarray:
        """Run one batch: an array (or tensor) for single-input models, or a dict with (at least) the graph's inputs;
        returns the first output (the embeddings).

        Keys the graph does not take (e.g. ``token_type_ids`` for a model that ignores them) are left out.
        """
        return self.run(inputs, self.output_names[0])

    def run(self, inputs: Any, output: str) -> np.ndarray:
        """Run one batch (as `__call__` takes it) and return the graph output named ``output``."""
        if isinstance(inputs, Mapping):
            missing = [name for name in self.input_names if name not in inputs]
            if missing:
                raise ValueError(f"Missing inputs {missing}; this model takes {self.input_names}.")
            values = {name: inputs[name] for name in self.input_names}
        elif len(self.input_names) == 1:
            values = {self.input_names[0]: inputs}
        else:
            raise ValueError(f"This model takes several inputs {self.input_names}; pass a dict of them.")
        feed = {name: _to_numpy(value, self._dtypes[name]) for name, value in values.items()}
        return self.session.run([output], feed)[0]


def _to_numpy(value: Any, dtype: type | None) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    return array if dtype is None else array.astype(dtype, copy=False)

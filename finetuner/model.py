"""`EmbeddingModel`: a tailored model that knows its preprocessing, so it encodes raw items, saves itself as
JSON + safetensors (never a pickle) and loads back with no other argument."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from finetuner.card import ModelCardData, frozen_summary, write_model_card
from finetuner.core.files import atomic_folder, read_json, read_safetensors
from finetuner.core.tensors import compare_states, mismatch_summary, non_finite_tensors
from finetuner.core.version import __version__
from finetuner.tailor import Head, TailoredModel

if TYPE_CHECKING:
    from finetuner.data.preprocessing import Preprocessing
    from finetuner.models import Backend

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "finetuner-embedding-model"
_CONFIG_KEYS = ("spec", "pool", "head", "preprocessing")


class EmbeddingModel(TailoredModel):
    """A `TailoredModel` (backbone → pool → head) plus what turns raw items into vectors and back into files.

    Args:
        backbone, pool, head: as in `TailoredModel`.
        preprocessing: the `Preprocessing` that turns raw items into inputs (image, text or image-text).
        spec: JSON recipe to rebuild the architecture: ``backbone`` (a models spec), ``layer_name``, ``task``
            (``embedding`` or ``classification``), ``classes``.

    ``card_data`` (a `finetuner.card.ModelCardData`: base model, data, loss, settings, metrics) feeds the
    ``README.md`` model card that `save` writes; it is saved in ``config.json`` and restored by `load`.

    Example:
        >>> model = finetuner.build_model("resnet18", pretrained=False, output_dim=64)
        >>> model.encode(["cat.jpg", "dog.jpg"]).shape  # doctest: +SKIP
        (2, 64)
        >>> model.save("out/model"); finetuner.load("out/model")  # doctest: +SKIP
    """

    def __init__(
        self,
        backbone: nn.Module,
        pool: nn.Module,
        head: Head | None = None,
        *,
        preprocessing: Preprocessing | None = None,
        spec: dict[str, Any] | None = None,
    ):
        super().__init__(backbone, pool, head)
        self.preprocessing = preprocessing
        self.spec = dict(spec or {})
        self.card_data = ModelCardData()

    @property
    def task(self) -> str:
        return self.spec.get("task", "embedding")

    @property
    def backend(self) -> Backend:
        """The model family this model's backbone comes from (`finetuner.models.Backend`)."""
        from finetuner.models import get_backend

        return get_backend(self.spec["backbone"].get("source"))

    @property
    def classes(self) -> list[str]:
        return list(self.spec.get("classes", []))

    @property
    def truncate_dim(self) -> int | None:
        """The size `encode` returns by default: the first ``truncate_dim`` dimensions of the embedding,
        renormalised (train with ``matryoshka_dims`` so they hold up); None: all. Saved with the model.

        Example:
            >>> model.truncate_dim = 64; model.save("out/model-64")  # doctest: +SKIP
        """
        return self.spec.get("truncate_dim")

    @truncate_dim.setter
    def truncate_dim(self, value: int | None) -> None:
        self.spec["truncate_dim"] = _check_truncate_dim(value)

    def feature_dim(self) -> int:
        """Size of the pooled backbone features (what the head sees), measured on `example_input`."""
        return self._width(self.features)

    def embedding_dim(self) -> int:
        """Size of what `encode` returns: the head's output, else the features (classifiers: the features)."""
        return self._width(self.features if self.task == "classification" else self)

    def _width(self, fn: Callable[[Any], torch.Tensor]) -> int:
        from finetuner.tailor import output_width

        return output_width(self, fn, self.example_input())

    def _device(self) -> torch.device:
        parameter = next(self.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def outputs(
        self,
        fn: Callable[[Any], torch.Tensor],
        items: Sequence[Any],
        batch_size: int = 64,
        *,
        num_workers: int | str = "auto",
        device: str | torch.device | None = None,
    ) -> np.ndarray:
        """Raw float32 outputs of ``fn`` (``self``, ``self.features``, ...) over raw items, in batches, unnormalised:
        what `encode` and `predict` build on.

        Example:
            >>> features = model.outputs(model.features, ["a.jpg", "b.jpg"])  # doctest: +SKIP
        """
        from finetuner.core.device import autocast_dtype, resolve_device
        from finetuner.inference import batched_outputs

        if self.preprocessing is None:
            raise ValueError("This model has no preprocessing, so it cannot read raw items: call it on tensors.")
        device = resolve_device(device) if device is not None else self._device()
        self.to(device, memory_format=torch.channels_last).eval()
        return batched_outputs(
            fn,
            list(items),
            self.preprocessing,
            device=device,
            batch_size=batch_size,
            num_workers=num_workers,
            autocast_dtype=autocast_dtype("auto", device),
        )

    def encode(
        self,
        items: Sequence[Any],
        batch_size: int = 64,
        *,
        normalize: bool = True,
        truncate_dim: int | None = None,
        num_workers: int | str = "auto",
        device: str | torch.device | None = None,
        engine: str = "auto",
    ) -> np.ndarray:
        """Embed raw items (image paths/arrays/PIL images, or texts) as float32 ``(N, D)``, L2-normalised unless
        ``normalize=False``. Classifiers return the features that feed their classification head.
        ``truncate_dim`` keeps the first dimensions (default: the model's `truncate_dim`, else all).

        When the backbone is frozen (every parameter ``requires_grad=False``, or saved by a fit that froze it
        whole), ``engine="auto"`` runs backbone and pooling in onnxruntime where that reproduces PyTorch on the
        first batch (`finetuner.inference.OnnxFunction`; the graph is kept in the finetuner cache) and the head in
        PyTorch; ``engine="torch"`` keeps everything in PyTorch.

        Example:
            >>> vectors = model.encode(["a.jpg", "b.jpg"], batch_size=32)  # doctest: +SKIP
            >>> small = model.encode(["a.jpg"], truncate_dim=64)  # doctest: +SKIP
        """
        return self._encode(self.task != "classification", items, batch_size, normalize, truncate_dim, num_workers,
                            device, engine)

    @property
    def adapter(self) -> str:
        """``"query"`` for a query-side adapter (the head maps queries; documents keep the backbone's features),
        else ``"both"``. Saved with the model."""
        return self.spec.get("adapter", "both")

    def encode_query(self, items: Sequence[Any], batch_size: int = 64, **options: Any) -> np.ndarray:
        """Embed queries: `encode` (the names sentence-transformers uses for asymmetric models).

        Example:
            >>> model.encode_query(query_vectors).shape  # doctest: +SKIP
            (10, 384)
        """
        return self.encode(items, batch_size, **options)

    def encode_document(self, items: Sequence[Any], batch_size: int = 64, **options: Any) -> np.ndarray:
        """Embed documents: for a query-side adapter (``adapter="query"``) the backbone's own features, so an
        index built before tuning stays valid (given vectors come back as they are, up to normalisation); else
        `encode`. ``options`` are `encode`'s.

        Example:
            >>> np.allclose(model.encode_document(index_vectors), index_vectors / norms)  # doctest: +SKIP
            True
        """
        mapped = self.adapter != "query" and self.task != "classification"
        return self._encode(mapped, items, batch_size, **options)

    def _encode(
        self,
        mapped: bool,
        items: Sequence[Any],
        batch_size: int,
        normalize: bool = True,
        truncate_dim: int | None = None,
        num_workers: int | str = "auto",
        device: str | torch.device | None = None,
        engine: str = "auto",
    ) -> np.ndarray:
        """`encode` through the head (``mapped``) or the features alone; the frozen engine when it applies."""
        fn = self if mapped else self.features
        features = self._frozen_features(engine, device)
        if features is not None:
            head = self.head if mapped else None
            fn = features if head is None else lambda inputs: head(features(inputs))
        vectors = self.outputs(fn, items, batch_size, num_workers=num_workers, device=device)
        size = _check_truncate_dim(truncate_dim if truncate_dim is not None else self.truncate_dim)
        if size is not None:
            if size > vectors.shape[1]:
                raise ValueError(f"truncate_dim={size} is larger than the {vectors.shape[1]}-d embedding.")
            vectors = np.ascontiguousarray(vectors[:, :size])
        if normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _frozen_features(
        self, engine: str, device: str | torch.device | None
    ) -> Callable[[Any], torch.Tensor] | None:
        """`features` in the engine of frozen work when the backbone is frozen (None: it is not, or ``torch``)."""
        from finetuner.core.device import resolve_device
        from finetuner.inference import check_engine, frozen_function
        from finetuner.models.weights import cache_dir
        from finetuner.training.cache import fingerprint_features

        frozen = self.card_data.frozen in (True, "the whole backbone") or not any(
            p.requires_grad for p in self.backbone.parameters()
        )
        weightless = next(self.backbone.parameters(), None) is None  # given vectors: nothing to run faster
        if check_engine(engine) == "torch" or not frozen or weightless:
            return None
        device = resolve_device(device) if device is not None else self._device()
        fingerprint = fingerprint_features(self.backbone, self.pool)
        folder = cache_dir() / "features" / "onnx"  # where the feature cache keeps its graphs: shared with it
        return frozen_function(self.features, fingerprint, folder, device=device, engine=engine)

    def evaluation_outputs(self, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """What metrics are computed on: normalised embeddings, or a classifier's logits."""
        if self.task == "classification":
            return self.outputs(self, items, batch_size)
        return self.encode(items, batch_size)

    def predict(self, items: Sequence[Any], batch_size: int = 64, *, num_workers: int | str = "auto") -> list[str]:
        """Class names predicted for raw items (classification models only).

        Example:
            >>> model.predict(["shoe.png"])  # doctest: +SKIP
            ['Sneaker']
        """
        if self.task != "classification":
            raise ValueError("predict() needs a classifier: fit with task='classification'. Use encode() here.")
        logits = self.outputs(self, items, batch_size, num_workers=num_workers)
        return [self.classes[i] for i in logits.argmax(axis=1)]

    def example_input(self, batch_size: int = 2) -> Any:
        """A batch this model accepts, built from its preprocessing (used to chop on load and to export)."""
        if getattr(self.preprocessing, "kind", None) == "text":
            return self.preprocessing.collate(["an example sentence", "another one"][:batch_size])
        if self.preprocessing is None:
            raise ValueError("This model has no preprocessing to build an example input from: pass inputs yourself.")
        return torch.randn(batch_size, *self.preprocessing.input_size)

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (+ tokenizer files) and a ``README.md`` model card to
        ``folder``, replacing it atomically.

        Example:
            >>> model.save("out/model")  # doctest: +SKIP
            PosixPath('out/model')
        """
        from safetensors.torch import save_model

        folder = Path(folder)
        # Parameters and normalisation statistics; other buffers may hold infinities by design (attention masks).
        statistics = [(n, b) for n, b in self.named_buffers() if n.endswith(("running_mean", "running_var"))]
        bad = non_finite_tensors([*self.named_parameters(), *statistics])
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise ValueError(
                f"Refusing to save to {folder}: NaN or infinite values in {shown}, so embeddings would be NaN. "
                "Training diverged: retrain with a lower learning_rate (or grad_clip=1.0, precision='fp32')."
            )
        card_data = dataclasses.replace(ModelCardData.from_dict(self.card_data))
        if card_data.frozen is None:  # requires_grad flags do not survive save/load: record them in the copy
            card_data.frozen = frozen_summary(self)
        config = {
            "format": FORMAT,
            "finetuner_version": __version__,
            "torch_version": torch.__version__,
            "spec": self.spec,
            "pool": self.pool.config(),
            "head": self.head.to_config() if self.head is not None else None,
            "preprocessing": self.preprocessing.to_config() if self.preprocessing is not None else None,
            "card_data": card_data.to_dict(),
        }
        with atomic_folder(folder) as staging:
            (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
            write_model_card(self, staging, card_data=card_data)
            if self.preprocessing is not None:
                self.preprocessing.save(staging)
            save_model(_mergeable_copy(self), str(staging / WEIGHTS_FILE))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, model: nn.Module | None = None, device: str | None = None) -> EmbeddingModel:
        """Rebuild a saved model from its folder alone (``model=`` only for custom ``nn.Module`` backbones).

        Example:
            >>> model = EmbeddingModel.load("out/model")  # doctest: +SKIP
        """
        from safetensors.torch import load_model

        from finetuner.data.preprocessing import preprocessing_from_config
        from finetuner.models import rebuild_backbone
        from finetuner.tailor import FeaturePool, chop, head_from_config

        folder = Path(folder)
        config = read_config(folder)
        spec = config["spec"]
        try:  # the config's recipe: any error here is the file's content, not the caller's
            prep = preprocessing_from_config(config["preprocessing"], folder) if config["preprocessing"] else None
            backbone = model if model is not None else rebuild_backbone(spec["backbone"], folder)
            shell = cls(backbone, FeaturePool.from_config(config["pool"]), None, preprocessing=prep, spec=spec)
            if spec.get("layer_name"):
                shell.backbone = chop(backbone, spec["layer_name"], example_input=shell.example_input())
            if config["head"] is not None:
                shell.head = head_from_config(config["head"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{folder / CONFIG_FILE} describes a model that cannot be rebuilt ({type(error).__name__}: {error}). "
                "Was it edited, or written by another finetuner version? Save the model again."
            ) from error
        weights = folder / WEIGHTS_FILE
        saved = read_safetensors(weights, "the model's weights", shapes_only=True)
        _, _, wrong_shapes = compare_states(shell.state_dict(), saved)  # tied weights are saved once: keys below
        missing, unexpected = ([], []) if wrong_shapes else load_model(shell, str(weights), strict=False, device="cpu")
        if wrong_shapes or missing or unexpected:
            raise ValueError(
                f"{weights} does not fit the model that {folder / CONFIG_FILE} describes: "
                f"{mismatch_summary(missing, unexpected, wrong_shapes)}. The two files come from different saves: "
                "copy the whole folder of one save() again."
            )
        shell.card_data = ModelCardData.from_dict(config.get("card_data"))
        if device is not None:
            from finetuner.core.device import resolve_device

            shell.to(resolve_device(device))
        return shell.eval()

    def export(self, path: str | Path, format: str = "onnx", **options: Any) -> Path:
        """Write the model in another tool's format; LoRA adapters are merged, the model itself is unchanged.

        Formats (``finetuner.export.FORMATS``): ``"onnx"`` (one self-contained file with the preprocessing in its
        metadata; ``normalize=False`` keeps raw outputs), ``"onnx-int8"`` (the same, dynamically quantised),
        ``"sentence-transformers"`` (a folder ``SentenceTransformer(path)`` loads; text models) and ``"timm"``
        (a folder ``timm.create_model("local-dir:" + path, pretrained=True)`` loads, plus the head). Each export is
        checked against this model on real items (``check_items=``, else ``card_data.example_items``: the training
        items ``fit`` records) and raises a `ValueError` naming the reason, and the formats that would work, when
        the format cannot hold it exactly. The model's `truncate_dim` and a classifier's class names travel along.

        Example:
            >>> model.export("out/model.onnx")  # doctest: +SKIP
            >>> model.export("out/st", format="sentence-transformers")  # doctest: +SKIP
        """
        from finetuner.export import export_model

        return export_model(_mergeable_copy(self), path, format, **options)

    def build_index(self, items: Sequence[Any], payloads: Sequence[Any] | None = None, **index_options: Any):
        """Encode ``items`` (`encode_document`) into a faiss `Index` kept on the model (payloads default to the
        items when they are paths or texts), ready for `search`.

        Example:
            >>> index = model.build_index(paths); model.search(["query.jpg"], k=5)  # doctest: +SKIP
        """
        from finetuner.search import Index

        vectors = self.encode_document(items)  # a query-side adapter leaves documents as they are
        if payloads is None and all(isinstance(item, (str, os.PathLike)) for item in items):
            payloads = [str(item) for item in items]
        self.index = Index(dim=vectors.shape[1], metric="cosine", **index_options)
        self.index.add(vectors, payloads=payloads)
        return self.index

    def search(self, queries: Sequence[Any], k: int = 10) -> list[list[dict[str, Any]]]:
        """Top-``k`` matches of each query in the index from `build_index`: ``{"id", "score", "payload"}`` dicts.

        Example:
            >>> model.search(["query.jpg"], k=3)[0][0]["payload"]  # doctest: +SKIP
            'data/shoe_17.png'
        """
        if getattr(self, "index", None) is None:
            raise ValueError("No index yet: call model.build_index(items) first (or load one with Index.load).")
        return self.index.search_results(self.encode(queries), k)


def _check_truncate_dim(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"truncate_dim must be a positive number of dimensions or None, got {value!r}.")
    return value


def read_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a saved model, with a clear error when ``folder`` is not one or the file is damaged.

    Example:
        >>> read_config(Path("out/model"))["format"]  # doctest: +SKIP
        'finetuner-embedding-model'
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a saved finetuner model: {CONFIG_FILE} is missing.")
    config = read_json(path, "the configuration of a model saved by finetuner")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{path} was not written by finetuner's save() (format={found!r}).")
    missing = [key for key in _CONFIG_KEYS if key not in config]
    if missing or not isinstance(config["spec"], dict) or "backbone" not in config["spec"]:
        lacks = ", ".join(missing) or "spec.backbone"
        raise ValueError(f"{path} is incomplete (it lacks {lacks}): save the model again, or restore the file.")
    return config


def is_saved_model(folder: str | Path) -> bool:
    """True when ``folder`` holds a model written by `EmbeddingModel.save`."""
    try:
        read_config(Path(folder))
    except (FileNotFoundError, ValueError):
        return False
    return True


def _mergeable_copy(model: EmbeddingModel) -> nn.Module:
    """What `save` writes: on the CPU, with LoRA adapters merged into the base weights (so the saved model loads
    and encodes without peft); the model in memory keeps its adapters."""
    from finetuner.models.lora import has_lora, merge_lora

    if not has_lora(model):
        return _cpu_copy(model)
    import copy

    merged = copy.deepcopy(model).cpu()
    merge_lora(merged.backbone)
    return merged


def _cpu_copy(model: nn.Module) -> nn.Module:
    """``model`` itself when already on the CPU, else a CPU copy (the caller's device placement is kept)."""
    import copy

    on_cpu = all(t.device.type == "cpu" for t in model.state_dict().values())
    return model if on_cpu else copy.deepcopy(model).cpu()

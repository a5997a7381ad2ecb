"""`FitConfig`: every setting of `finetuner.fit`, in sections, with one set of defaults for Python and the CLI.

`fit(**options)` and `finetuner fit --option value` both build a `FitConfig`; a config file (JSON or YAML) holds
the same sections, so a run is reproduced from its file in either front door.

Example:
    >>> config = FitConfig.from_options(freeze=True, output_dim=128, epochs=5)
    >>> config.model.output_dim, config.training.epochs
    (128, 5)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetuner.inference import check_engine
from finetuner.training.config import TrainConfig
from finetuner.training.trackers import check_tracker_names

TASKS = ("embedding", "classification")


@dataclass
class ModelConfig:
    """How the model is built and tailored.

    Attributes:
        task: ``embedding`` (metric learning) or ``classification`` (the classifier becomes
            ``Linear(features, len(classes))``).
        freeze: True for the whole backbone; a layer name or a list of them as `finetuner display` prints them for
            the original model (each freezes everything under it); ``"first:N"`` / ``"all-but-last:N"`` for the
            first N / all but the last N transformer blocks (with the embeddings). Checked against the model
            before it is cut (`finetuner.tailor.resolve_freeze`).
        output_dim: size of the trainable head's output (None: no head; ``"auto"``: the best of 128, 256 and, unless
            the whole backbone is frozen, no head, measured by `finetuner.probing.probe` on validation data).
        layer_name: cut the network after this layer (`display` lists them); None: the layer feeding the original
            classifier; ``"auto"``: the best of that layer and the stages (text: blocks) before it, measured by
            `finetuner.probing.probe` in one pass of the backbone.
        head: head name (``residual``: starts as the PCA of the backbone's features and learns a residual on top,
            the measured default; ``projection``, ``linear``, ...) or a `finetuner.tailor.Head`.
        lora: True, LoRA options (``rank``, ``alpha``, ``dropout``, ``target_modules``, or peft's ``r``,
            ``lora_alpha``, ``lora_dropout``) or a ``peft.LoraConfig``, to train low-rank adapters instead of the
            backbone's weights.
        pretrained: load pretrained weights (from disk; never downloaded).
        input_size: one sample's shape, for a custom ``nn.Module``.
        example_input: a batch a custom ``nn.Module`` accepts (instead of ``input_size``).
        model_options: passed to the model's builder, e.g. ``{"pooling": "cls"}`` or ``{"weights": "r50.pth"}``.
    """

    task: str = "embedding"
    freeze: bool | str | list[str] = False
    output_dim: int | str | None = None
    layer_name: str | None = None
    head: Any = "residual"
    lora: bool | dict[str, Any] | None = None
    pretrained: bool = True
    input_size: tuple[int, ...] | None = None
    example_input: Any = None
    model_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from finetuner.tailor import check_freeze

        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}.")
        self.freeze = check_freeze(self.freeze)
        auto = self.output_dim == "auto"
        if self.output_dim is not None and not auto and (not isinstance(self.output_dim, int) or self.output_dim < 1):
            raise ValueError(f"output_dim must be a positive size, 'auto' or None (no head), got {self.output_dim!r}.")
        if self.input_size is not None:
            self.input_size = tuple(self.input_size)
            if not all(isinstance(v, int) and v > 0 for v in self.input_size):
                raise ValueError(f"input_size must be positive ints such as (3, 224, 224), got {self.input_size}.")


@dataclass
class DataConfig:
    """How training data is read and held out.

    Attributes:
        kind: what the data holds: ``auto`` (inferred when unambiguous; a pair loss asks for pairs), ``labeled``,
            ``pairs``, ``scored_pairs`` or ``triplets``.
        columns: which table columns hold what, e.g. ``{"image": "path", "label": "category"}`` or
            ``{"query": "q", "document": "pos", "negative": "neg"}``.
        val_split: without ``eval_data``, hold out this fraction of the items of the training classes for
            validation (0 with ``val_class_split=0``: train on everything, no validation).
        val_class_split: without ``eval_data`` and with 4 or more classes, also hold out this fraction of whole
            classes, which stand for the classes added later (selection keeps them from getting worse).
        augment: light training augmentation of images (random resized crop, flip).
    """

    kind: str = "auto"
    columns: dict[str, str] | None = None
    val_split: float = 0.1
    val_class_split: float = 0.2
    augment: bool = True

    def __post_init__(self) -> None:
        from finetuner.data import DataKind

        kinds = [kind.value for kind in DataKind]
        if str(self.kind) not in kinds:
            raise ValueError(f"kind must be one of {kinds}, got {self.kind!r}.")
        for name in ("val_split", "val_class_split"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")


@dataclass
class CacheConfig:
    """The feature cache of frozen backbones.

    Attributes:
        cache: with a frozen backbone, compute its features once and train the head on them.
        cache_views: augmented views cached per item (1: none).
        cache_dtype: ``float32`` or ``float16`` storage.
        cache_dir: where features go (default ``$FINETUNER_CACHE`` or ``~/.cache/finetuner``); under torchrun on
            several machines, a folder they all share.
        cache_max_memory: bytes of cached features read into RAM; larger caches are memory-mapped from disk.
        cache_engine: what runs the frozen backbone: ``auto`` (onnxruntime on the CPU where it reproduces PyTorch,
            else PyTorch), ``torch`` or ``onnxruntime``.
    """

    cache: bool = True
    cache_views: int = 1
    cache_dtype: str = "float32"
    cache_dir: str | None = None
    cache_max_memory: int = 2 * 1024**3
    cache_engine: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.cache_views, bool) or not isinstance(self.cache_views, int) or self.cache_views < 1:
            raise ValueError(
                f"cache_views must be a whole number of at least 1 (1: no augmentation), got {self.cache_views!r}."
            )
        if self.cache_dtype not in ("float32", "float16"):
            raise ValueError(f"cache_dtype must be 'float32' or 'float16', got {self.cache_dtype!r}.")
        if isinstance(self.cache_max_memory, bool) or self.cache_max_memory < 0:
            raise ValueError(
                f"cache_max_memory must be a number of bytes (0: always memory-map), got {self.cache_max_memory!r}."
            )
        check_engine(self.cache_engine, "cache_engine")


@dataclass
class EvalConfig:
    """Retrieval evaluation before, during and after training.

    Attributes:
        k: cut-offs of recall@k, precision@k, map@k and ndcg@k.
        max_queries: evaluate on at most this many queries (a seeded sample).
        select_best: return the best validated candidate (the untrained start included) rather than the last
            epoch.
        guard_tolerance: how much the primary metric on held-out classes may fall below the untuned model's
            before a candidate is refused (None: no guard). When every epoch is refused, the weights are mixed
            with the start (WiSE-FT), the mix chosen on validation.
        also_guard: more metrics of the held-out classes held to ``guard_tolerance``, e.g. ``("recall@1",)``
            (the nearest neighbour, beside the primary MAP@R); () (the default): the primary metric only.
            Measured in QUALITY.md: on validations of one or two held-out classes Recall@1 moves in steps larger
            than the tolerance, and guarding it cost seen-class Recall@1 without helping unseen classes.
        eval_steps: also evaluate every this many optimizer steps (logged to trackers; None: after each epoch only).
        refit: once validation has chosen a trained epoch (or mix), train the head again from its start with that
            choice on the training and validation items together (frozen backbone, validation held out of the
            training data); the validated figures stay reported. False returns the validated model itself.
        search: ``auto`` (opt-in: measured in QUALITY.md, it raised seen-class MAP@R, Recall@1 on three of five
            data sets, and lost on unseen classes of two): with a frozen backbone's cached features and labelled data,
            first run a small seeded
            recipe search (`finetuner._fit.search`: learning rate, loss and miner, ``keep_neighbourhood``; each
            trial's epoch chosen by the selection above) on fit's own validation and train with the best; None:
            train the recipe as given. Settings given explicitly (``loss``, ``miner``, a ``learning_rate`` other
            than the default, ``keep_neighbourhood`` other than 0) are kept.
        search_trials: at most this many trials (the given recipe is the first).
        search_budget: seconds the search may take (None: as long as the backbone's pass over the data took, at
            least 30 s); the trial running when it is spent finishes.
    """

    k: tuple[int, ...] = (1, 5, 10)
    max_queries: int | None = None
    select_best: bool = True
    guard_tolerance: float | None = 0.01
    also_guard: tuple[str, ...] = ()
    eval_steps: int | None = None
    refit: bool = True
    search: str | None = None
    search_trials: int = 12
    search_budget: float | None = None

    def __post_init__(self) -> None:
        self.also_guard = (self.also_guard,) if isinstance(self.also_guard, str) else tuple(self.also_guard)
        if self.search not in ("auto", None):
            raise ValueError(f"search must be 'auto' or None (train the recipe as given), got {self.search!r}.")
        if isinstance(self.search_trials, bool) or not isinstance(self.search_trials, int) or self.search_trials < 1:
            raise ValueError(f"search_trials must be a whole number of at least 1, got {self.search_trials!r}.")
        if self.search_budget is not None and not self.search_budget > 0:
            raise ValueError(f"search_budget must be a positive number of seconds or None, got {self.search_budget!r}.")
        if not isinstance(self.refit, bool):
            raise ValueError(f"refit must be True or False, got {self.refit!r}.")
        if self.eval_steps is not None and (isinstance(self.eval_steps, bool) or self.eval_steps < 1):
            raise ValueError(f"eval_steps must be a positive number of steps or None, got {self.eval_steps!r}.")
        self.k = (self.k,) if isinstance(self.k, int) else tuple(self.k)
        if not self.k or not all(isinstance(v, int) and v > 0 for v in self.k):
            raise ValueError(f"k must be positive cut-offs such as (1, 5, 10), got {self.k}.")
        if self.guard_tolerance is not None and not 0 <= self.guard_tolerance <= 1:
            raise ValueError(f"guard_tolerance must be in [0, 1] or None, got {self.guard_tolerance}.")


@dataclass
class OutputConfig:
    """What `fit` writes.

    Attributes:
        output_dir: writes ``model/``, ``checkpoints/`` (resumable) and ``report/`` there (None: nothing written).
        resume_from: a checkpoint folder (e.g. ``output_dir/checkpoints``) to continue from.
        save_total_limit: resumable checkpoints kept in ``output_dir/checkpoints`` (the newest ones).
        report_to: experiment trackers that get the config, the loss per step, the learning rate and the metrics:
            any of ``tensorboard``, ``mlflow``, ``wandb`` (all offline: under ``output_dir/logs``, or ``./logs``).
        verbose: log a concise line per epoch to stderr when logging is not configured (False: warnings only).
    """

    output_dir: str | None = None
    resume_from: str | None = None
    save_total_limit: int = 2
    report_to: tuple[str, ...] = ()
    verbose: bool = True

    def __post_init__(self) -> None:
        self.report_to = check_tracker_names(self.report_to)
        if isinstance(self.save_total_limit, bool) or self.save_total_limit < 1:
            raise ValueError(f"save_total_limit must be at least 1 checkpoint, got {self.save_total_limit!r}.")
        if self.output_dir is not None and Path(self.output_dir).is_file():
            raise ValueError(f"output_dir {self.output_dir} is a file: give a folder path (it is created if needed).")
        if self.resume_from is not None and not Path(self.resume_from).is_dir():
            raise FileNotFoundError(
                f"resume_from={self.resume_from} is not a folder: give the checkpoints folder a previous run wrote "
                "(output_dir/checkpoints)."
            )


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "training": TrainConfig,
    "cache": CacheConfig,
    "evaluation": EvalConfig,
    "output": OutputConfig,
}


@dataclass
class FitConfig:
    """All settings of one `fit`, by section. Flat option names map one-to-one to section fields.

    Example:
        >>> FitConfig.from_options(learning_rate=1e-4).training.learning_rate
        0.0001
        >>> FitConfig.load("run.yaml")  # doctest: +SKIP
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @staticmethod
    def option_names() -> dict[str, str]:
        """Every flat option name and the section it belongs to."""
        return {f.name: section for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}

    @classmethod
    def from_options(cls, base: FitConfig | Mapping[str, Any] | None = None, **options: Any) -> FitConfig:
        """A config from flat options (``epochs=5``) on top of ``base`` (a `FitConfig` or its `to_dict`).

        Unknown names raise a ValueError naming the closest known ones.
        """
        values = cls._as_dict(base)
        names = cls.option_names()
        for name, value in options.items():
            if name not in names:
                close = difflib.get_close_matches(name, list(names), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"Unknown fit option {name!r}.{hint} FitConfig.option_names() lists them all.")
            values[names[name]][name] = value
        return cls(**{section: SECTIONS[section](**fields) for section, fields in values.items()})

    @classmethod
    def _as_dict(cls, base: FitConfig | Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
        if base is None:
            return {section: {} for section in SECTIONS}
        if isinstance(base, FitConfig):
            return {section: dict(vars(getattr(base, section))) for section in SECTIONS}
        unknown = set(base) - set(SECTIONS)
        if unknown:
            raise ValueError(f"Unknown config sections {sorted(unknown)}: the sections are {list(SECTIONS)}.")
        return {section: dict(base.get(section) or {}) for section in SECTIONS}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The JSON-serialisable sections (objects such as a custom head or loss appear by their class name)."""
        return {section: {k: _jsonable(v) for k, v in vars(getattr(self, section)).items()} for section in SECTIONS}

    @classmethod
    def load(cls, path: str | Path) -> FitConfig:
        """Read a config file written by `save` (``.json``, ``.yaml`` or ``.yml``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Config file {path} does not exist.")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as error:  # noqa: BLE001 - any parse error is the same user error
            raise ValueError(f"Config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"Config file {path} must hold a mapping of sections {list(SECTIONS)}.")
        return cls.from_options(data)

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON, or YAML for a ``.yaml``/``.yml`` path."""
        path = Path(path)
        data = self.to_dict()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(data, sort_keys=False))
        else:
            path.write_text(json.dumps(data, indent=2))
        return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return None if hasattr(value, "shape") else type(value).__name__

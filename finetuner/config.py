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

from finetuner.core.fields import ConfigError, check_fields, require
from finetuner.inference import ENGINES
from finetuner.training.config import TrainConfig
from finetuner.training.trackers import check_tracker_names

TASKS = ("embedding", "classification")
ADAPTERS = ("both", "query")
ENGINE_HINT = "'auto' runs a frozen backbone in onnxruntime where it reproduces PyTorch, 'torch' always in PyTorch."


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
        adapter: what the head maps: ``both`` (every item) or ``query`` (pairs, frozen backbone: queries only;
            documents keep the backbone's features, so an existing index of them stays valid; the default loss is
            then `CorpusRankingLoss`: each query ranks among all training documents).
    """

    task: str = "embedding"
    freeze: bool | str | list[str] = False
    output_dim: int | str | None = None
    layer_name: str | None = None
    head: Any = "residual"
    lora: bool | dict[str, Any] | Any | None = None  # Any: a peft.LoraConfig
    pretrained: bool = True
    input_size: tuple[int, ...] | None = None
    example_input: Any = None
    model_options: dict[str, Any] = field(default_factory=dict)
    adapter: str = "both"

    def __post_init__(self) -> None:
        from finetuner.tailor import check_freeze

        try:  # before the types: its messages say which form is wrong
            self.freeze = check_freeze(self.freeze)
        except ValueError as error:
            raise ConfigError("freeze", self.freeze, "a form resolve_freeze takes", str(error)) from None
        check_fields(self)
        require(self.task in TASKS, "task", self.task, " or ".join(repr(task) for task in TASKS))
        dim = self.output_dim
        ok = dim is None or dim == "auto" or isinstance(dim, int) and dim >= 1
        require(ok, "output_dim", dim, "a positive size, 'auto' or None (no head)")
        require(self.adapter in ADAPTERS, "adapter", self.adapter, " or ".join(repr(a) for a in ADAPTERS))
        if self.input_size is not None:
            ok = bool(self.input_size) and min(self.input_size) >= 1
            require(ok, "input_size", self.input_size, "positive sizes such as 3,224,224")


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

        check_fields(self)
        kinds = [kind.value for kind in DataKind]
        require(str(self.kind) in kinds, "kind", self.kind, "one of " + ", ".join(kinds))
        for name in ("val_split", "val_class_split"):
            require(0 <= getattr(self, name) < 1, name, getattr(self, name), "a fraction in [0, 1)")


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
        check_fields(self)
        require(self.cache_views >= 1, "cache_views", self.cache_views, "at least 1 (1: no augmentation)")
        require(self.cache_dtype in ("float32", "float16"), "cache_dtype", self.cache_dtype, "'float32' or 'float16'")
        memory = self.cache_max_memory
        require(memory >= 0, "cache_max_memory", memory, "a number of bytes (0: always memory-map)")
        if self.cache_dir is not None and Path(self.cache_dir).is_file():
            raise ConfigError("cache_dir", self.cache_dir, "a folder", "It is a file: give a folder path.")
        engines = " or ".join(repr(engine) for engine in ENGINES)
        require(self.cache_engine in ENGINES, "cache_engine", self.cache_engine, engines, ENGINE_HINT)


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
        check_fields(self)
        steps = self.eval_steps
        require(steps is None or steps >= 1, "eval_steps", steps, "a positive number of steps or None")
        require(bool(self.k) and min(self.k) >= 1, "k", self.k, "positive cut-offs such as 1,5,10")
        if self.max_queries is not None:
            require(self.max_queries >= 1, "max_queries", self.max_queries, "a positive number or None (all)")
        tolerance = self.guard_tolerance
        require(tolerance is None or 0 <= tolerance <= 1, "guard_tolerance", tolerance, "in [0, 1] or None (no guard)")
        require(self.search in ("auto", None), "search", self.search, "'auto' or None (train the recipe as given)")
        require(self.search_trials >= 1, "search_trials", self.search_trials, "a whole number of at least 1")
        budget = self.search_budget
        require(budget is None or budget > 0, "search_budget", budget, "a positive number of seconds or None")


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
    report_to: str | tuple[str, ...] | None = ()  # a name, a comma list or names: stored as a tuple
    verbose: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        try:
            self.report_to = check_tracker_names(self.report_to)
        except ValueError as error:
            raise ConfigError("report_to", self.report_to, "tracker names", str(error)) from None
        limit = self.save_total_limit
        require(limit >= 1, "save_total_limit", limit, "at least 1 checkpoint")
        if self.output_dir is not None and Path(self.output_dir).is_file():
            raise ConfigError(
                "output_dir", self.output_dir, "a folder", "It is a file: give a folder path (created if needed)."
            )
        if self.resume_from is not None and not Path(self.resume_from).is_dir():
            raise ConfigError(
                "resume_from",
                self.resume_from,
                "an existing folder",
                "Give the checkpoints folder a previous run wrote (output_dir/checkpoints).",
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

        Every value is parsed by its field's type and range (`finetuner.core.fields`): a wrong one is a
        `ConfigError` naming the field, the value and what is expected; an unknown name is a ValueError naming
        the closest known ones.
        """
        values = cls._as_dict(base)
        names = cls.option_names()
        for name, value in options.items():
            if name not in names:
                raise ValueError(f"{_unknown(name, names, 'fit option')} FitConfig.option_names() lists them all.")
            values[names[name]][name] = value
        return cls(**{section: SECTIONS[section](**fields) for section, fields in values.items()})

    @classmethod
    def _as_dict(cls, base: FitConfig | Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
        if base is None:
            return {section: {} for section in SECTIONS}
        if isinstance(base, FitConfig):
            return {section: dict(vars(getattr(base, section))) for section in SECTIONS}
        names = cls.option_names()
        flat = [key for key in base if key not in SECTIONS and key in names]
        if flat:
            places = "; ".join(f"{key} belongs under {names[key]}:" for key in flat)
            raise ValueError(f"A config file holds sections {list(SECTIONS)}, not flat settings: {places}.")
        for key in base:
            if key not in SECTIONS:
                raise ValueError(f"{_unknown(key, SECTIONS, 'config section')} The sections are {list(SECTIONS)}.")
        values = {}
        for section, fields in ((section, base.get(section)) for section in SECTIONS):
            if fields is not None and not isinstance(fields, Mapping):
                raise ConfigError(section, fields, f"a mapping of {section} settings (name: value)")
            for key in fields or {}:
                if names.get(key) != section:
                    where = f"{key} belongs under {names[key]}:, not {section}:." if key in names else None
                    own = {f.name for f in dataclasses.fields(SECTIONS[section])}
                    raise ValueError(where or _unknown(key, own, f"{section} setting"))
            values[section] = dict(fields or {})
        return values

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
        try:
            return cls.from_options(data)
        except ConfigError as error:
            section = cls.option_names().get(error.field)
            raise error.renamed(f"{path}: {section}.{error.field}" if section else f"{path}: {error.field}") from None
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

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


def _unknown(name: Any, known: Any, what: str) -> str:
    """``Unknown <what> 'name'.`` with the closest known names."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=3)
    return f"Unknown {what} {name!r}." + (f" Did you mean {', '.join(close)}?" if close else "")


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

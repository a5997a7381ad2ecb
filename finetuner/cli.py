"""The `finetuner` command: list-models, display, fit, probe, preflight, eval, encode, export, index, search.

Heavy libraries (torch, timm, transformers) are imported inside the commands, so `finetuner --help` is fast.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer

app = typer.Typer(
    help="Turn a pretrained model into a task-specific embedding model or classifier, on your own data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("finetuner").setLevel(logging.DEBUG if verbose else logging.INFO)
    from finetuner.core.log import log_from_main_process

    log_from_main_process()


def _parse_freeze(value: str) -> bool | str | list[str]:
    """``true``/``false``, ``first:N`` / ``all-but-last:N``, or comma-separated layer names: the forms
    `finetuner.tailor.resolve_freeze` takes, checked by `ModelConfig`."""
    from finetuner.tailor.freezing import ALL_BUT_LAST, FIRST

    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "all"):
        return True
    if lowered in ("false", "no", "0", "none", ""):
        return False
    if lowered.startswith((FIRST, ALL_BUT_LAST)):
        return value.strip()
    return [name.strip() for name in value.split(",") if name.strip()]


USER_ERRORS = (ValueError, OSError, KeyError)


def _error_line(error: Exception) -> str:
    """One line for a failure: an OSError names its path (``[Errno 2]`` and its kin said in words)."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    return str(error)


def _version(value: bool) -> None:
    if value:
        from finetuner import __version__

        typer.echo(f"finetuner {__version__}")
        raise typer.Exit()


@app.callback(context_settings={"help_option_names": ["-h", "--help"]})
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", help="print the version and exit", callback=_version, is_eager=True)
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show the full traceback of an error")] = False,
) -> None:
    """Turn a pretrained model into a task-specific embedding model or classifier, on your own data."""
    ctx.obj = {"debug": debug}


def command(name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command whose errors print as one line and exit with 1 (2 stays for usage errors);
    ``--debug`` shows the traceback instead."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def guarded(ctx: typer.Context, **kwargs: Any) -> None:
            try:
                function(**kwargs)
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise
            except Exception as error:  # noqa: BLE001 - every failure becomes one line unless --debug
                if (ctx.find_root().obj or {}).get("debug"):
                    raise
                hint = "" if isinstance(error, USER_ERRORS) else " (run with --debug for the traceback)"
                typer.secho(f"error: {_error_line(error)}{hint}", fg=typer.colors.RED, err=True)
                raise typer.Exit(code=1) from None

        signature = inspect.signature(function, eval_str=True)
        for parameter in signature.parameters.values():
            _plain_flag(parameter.annotation)
        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        guarded.__signature__ = signature.replace(parameters=[context, *signature.parameters.values()])
        app.command(name)(guarded)
        return function

    return register


def _plain_flag(annotation: Any) -> None:
    """A bool option is a flag: no ``<bool>`` value column in the help."""
    if get_origin(annotation) is Annotated and get_args(annotation)[0] in (bool, bool | None):
        for info in get_args(annotation)[1:]:
            if isinstance(info, typer.models.OptionInfo) and info.metavar is None:
                info.metavar = ""


@command("list-models")
def list_models_command(pattern: Annotated[str, typer.Argument(help="fnmatch pattern, e.g. 'resnet*'")] = "*") -> None:
    """List registered model names with backend, embedding size and weight source (any timm name works too)."""
    from finetuner.api import list_models

    entries = list_models(pattern)
    width = max((len(e.name) for e in entries), default=4)
    typer.echo(f"{'name':<{width}}  {'backend':<11}  {'dim':>5}  weights")
    for entry in entries:
        dim = str(entry.output_dim) if entry.output_dim else "-"
        typer.echo(f"{entry.name:<{width}}  {entry.backend:<11}  {dim:>5}  {entry.weights}")


@command()
def display(
    model: Annotated[str, typer.Argument(help="model name, timm name or saved folder")],
    input_size: Annotated[str | None, typer.Option(help="one sample's shape, e.g. 3,224,224")] = None,
) -> None:
    """Show a model's layers in execution order: name, type, output shape, parameters, trainable, dense."""
    from finetuner.api import display as display_model
    from finetuner.model import is_saved_model

    size = _parse_shape(input_size)
    if is_saved_model(model):
        from finetuner.api import load

        display_model(load(model))
    else:
        display_model(model, input_size=size)


DEMO = {"model": "efficientnet_lite0", "train_data": "fashion-mnist", "test_data": "fashion-mnist:test"}
DEMO_OPTIONS = {"freeze": True, "output_dim": 128}
CLI_OUTPUT_DIR = "finetuner-output"
NOT_ON_THE_CLI = ("example_input", "verbose")  # Python objects, not text; the CLI sets up its own logging


def fit(
    model: str | None,
    train_data: str | None,
    eval_data: str | None,
    test_data: str | None,
    labels: str | None,
    config: Path | None,
    print_config: bool,
    resume: bool,
    verbose: bool,
    **options: str | bool | None,
) -> None:
    """Fine-tune a model. With no MODEL and TRAIN_DATA: the demo, EfficientNet-Lite0 (frozen, 128-d head) on the
    embedded Fashion-MNIST subset. Every option of finetuner.fit is here, with the same defaults; --config reads a
    file written by --print-config (options given here override it)."""
    _setup_logging(verbose)
    from finetuner.config import ConfigError, FitConfig

    given = {name: _parse_option(name, value) for name, value in options.items() if value is not None}
    if model is None and train_data is None:
        model, train_data, test_data = DEMO["model"], DEMO["train_data"], test_data or DEMO["test_data"]
        given = DEMO_OPTIONS | given
    elif train_data is None and _is_vectors_file(model):  # finetuner fit vectors.npy --labels labels.txt
        model, train_data = None, _vector_data(model, labels)
    elif labels is not None:
        raise typer.BadParameter("--labels goes with a .npy file of vectors: finetuner fit vectors.npy --labels FILE")
    if train_data is None:
        raise typer.BadParameter("give MODEL and TRAIN_DATA, a file of vectors (.npy, .parquet), or neither (the demo)")
    base = FitConfig.load(config) if config is not None else None
    try:
        fit_config = FitConfig.from_options(base, **given)
    except ConfigError as error:
        raise error.renamed("--" + _flag(error.field)) from None
    if fit_config.output.output_dir is None:
        fit_config.output.output_dir = CLI_OUTPUT_DIR
    if print_config:
        typer.echo(json.dumps(fit_config.to_dict(), indent=2))
        return
    if resume:
        checkpoints = Path(fit_config.output.output_dir) / "checkpoints"
        if not checkpoints.is_dir():
            raise FileNotFoundError(f"--resume: no checkpoints in {checkpoints}; run without --resume to start.")
        fit_config.output.resume_from = str(checkpoints)
    from finetuner.api import fit as fit_model

    run = fit_model(model, train_data, eval_data, test_data=test_data, config=fit_config)
    out = Path(fit_config.output.output_dir)
    _print_metrics(run.metrics)
    typer.echo(f"model saved to {out / 'model'}  (load it with finetuner.load('{out / 'model'}'))")
    typer.echo(f"report: {out / 'report' / 'report.html'}")
    verdict = run.verdict()
    typer.secho(verdict, fg=typer.colors.RED if "worse than" in verdict else None, bold=True)


VECTOR_FILES = (".npy", ".parquet")


def _is_vectors_file(path: str | None) -> bool:
    """Whether fit's first argument is data, not a model: a file of vectors (no model needed)."""
    return path is not None and Path(path).suffix.lower() in VECTOR_FILES and Path(path).is_file()


def _vector_data(path: str, labels: str | None) -> Any:
    """``vectors.npy`` (with ``--labels``) as `VectorData`; a Parquet file is read as a table (``--columns``)."""
    if Path(path).suffix.lower() != ".npy":
        if labels is not None:
            raise typer.BadParameter("--labels goes with a .npy file; a Parquet file names its columns (--columns)")
        return path
    if labels is None:
        raise typer.BadParameter(f"{path} holds vectors without labels: give them with --labels labels.txt")
    from finetuner.data import VectorData

    return VectorData(path, _read_labels(Path(labels)))


def _read_labels(path: Path) -> list[str]:
    """One label a line (``.txt``), or the ``label`` column of a CSV (its only column when it has no header)."""
    import csv

    if not path.is_file():
        raise FileNotFoundError(f"--labels: {path} is not a file; give a text file with one label a line.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() != ".csv":
        return [line.strip() for line in text.splitlines() if line.strip()]
    rows = [row for row in csv.reader(text.splitlines()) if row]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "label" in header:
        column = header.index("label")
        return [row[column].strip() for row in rows[1:]]
    if header and max(len(row) for row in rows) == 1:
        return [row[0].strip() for row in rows]
    raise ValueError(f"--labels: {path} has several columns and none is named 'label': name the labels' column.")


def _fit_signature() -> inspect.Signature:
    """`fit`'s CLI parameters: its own, then one option per `FitConfig` field, each with its default (from
    FitConfig) and a metavar from its type."""
    from rich.markup import escape

    from finetuner.config import SECTIONS

    own = [
        _argument("model", "model name, timm name or folder (omit with TRAIN_DATA for the demo)"),
        _argument("train_data", "image folder, CSV, 'fashion-mnist' or 'fortunes'"),
        _option("eval_data", str | None, "validation data: scores epochs, picks the model (default: held out)"),
        _option("test_data", str | None, "test data: scored before and after, never picks anything (demo: test split)"),
        _option("labels", str | None, "with a .npy file of vectors: their labels, one a line (a .txt, or a CSV with a "
                "'label' column)"),
        _option("config", Path | None, "a JSON/YAML file of settings (see --print-config)"),
        _option("print_config", bool, "print the settings as JSON and exit", default=False),
        _option("resume", bool, "continue from OUTPUT_DIR/checkpoints", default=False),
        _option("verbose", bool, "debug logging", default=False, names=("--verbose", "-v")),
    ]
    fields = []
    for section, cls in SECTIONS.items():
        helps = _attribute_help(cls)
        for field in dataclasses.fields(cls):
            if field.name in NOT_ON_THE_CLI:
                continue
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            flag = field.type == "bool"
            text = f"{helps.get(field.name, '')} [default: {_shown_default(field.name, default)}]"
            kind = bool | None if flag else str | None
            metavar = _metavar(field.name)
            fields.append(
                _option(field.name, kind, escape(text.replace("``", "")), panel=f"{section} settings", metavar=metavar)
            )
    return inspect.Signature(own + fields)


def _argument(name: str, help: str) -> inspect.Parameter:
    argument = typer.Argument(help=help, show_default=False, metavar=name.upper())
    annotation = Annotated[str | None, argument]
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation)


def _option(
    name: str,
    kind: Any,
    help: str,
    default: Any = None,
    names: tuple[str, ...] = (),
    panel: str | None = None,
    metavar: str | None = None,
) -> inspect.Parameter:
    flag = "--" + _flag(name)
    if kind is bool or kind == bool | None:
        names, metavar = names or (f"{flag}/--no-{flag[2:]}",), ""  # a flag takes no value: no metavar shown
    option = typer.Option(*names, help=help, show_default=False, rich_help_panel=panel, metavar=metavar)
    annotation = Annotated[kind, option]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_METAVARS = {"freeze": "BOOL|first:N|NAMES", "output_dim": "INT|auto", "lora": "BOOL|JSON", "num_workers": "INT|auto"}


def _metavar(name: str) -> str:
    """What a value of the `FitConfig` field ``name`` looks like, from its annotation: INT, FLOAT, TEXT, JSON,
    N,N,... (a few fields that take one word besides their type say so)."""
    if name in _METAVARS:
        return _METAVARS[name]
    members = set(_members(name))
    if any(get_origin(m) is dict for m in members):
        return "JSON"
    if any(get_origin(m) in (tuple, list) for m in members) and str not in members:
        return "N,N,..."
    for kind, shown in ((int, "INT"), (float, "FLOAT")):
        if kind in members:
            return shown
    return "TEXT"


def _shown_default(name: str, default: Any) -> str:
    """A default as the option takes it: ``1,5,10``, ``{}``, ``None``; a flag by its name (``no-compile``)."""
    if isinstance(default, bool) and _members(name) == (bool,):
        return _flag(name) if default else f"no-{_flag(name)}"
    if isinstance(default, tuple):
        return ",".join(str(v) for v in default) or "none"
    if isinstance(default, dict):
        return json.dumps(default)
    return str(default)


def _members(name: str) -> tuple[Any, ...]:
    """The types the `FitConfig` field ``name`` takes, None left out."""
    from finetuner.config import SECTIONS, FitConfig
    from finetuner.core.fields import field_types, type_members

    annotation = field_types(SECTIONS[FitConfig.option_names()[name]])[name]
    return tuple(m for m in type_members(annotation) if m is not type(None))


def _attribute_help(cls: type) -> dict[str, str]:
    """``name: text`` lines of a dataclass docstring's Attributes section (``a, b: text`` names both)."""
    helps: dict[str, str] = {}
    names: list[str] = []
    for line in (cls.__doc__ or "").split("Attributes:", 1)[-1].splitlines():
        head, sep, text = line.strip().partition(": ")
        if sep and line.startswith(" " * 8) and not line.startswith(" " * 12):
            names = [n.strip() for n in head.split(",")]
            for name in names:
                helps[name] = text.strip()
        elif line.strip() and names:
            for name in names:
                helps[name] += " " + line.strip()
    return helps


def _parse_option(name: str, text: Any) -> Any:
    """A CLI value for the `FitConfig` field ``name``, read by the field's type: text fields keep the text, list
    fields split at commas (``1,5,10``), ``freeze`` takes its own forms, the rest is JSON (numbers, true/false,
    null or None, {...} objects); the typed config then checks it (`finetuner.core.fields`)."""
    if isinstance(text, bool):
        return text
    if name == "freeze":
        return _parse_freeze(text)
    members = _members(name)
    if text.strip() in ("None", "none", "null"):
        return None
    if set(members) <= {str, Any}:
        return text
    if str not in members and any(get_origin(m) in (tuple, list) for m in members):
        return tuple(_number(v.strip()) for v in text.split(","))
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lstrip().startswith(("{", "[")):
            raise typer.BadParameter(f"--{_flag(name)} is not valid JSON: {text}") from None
        return text


def _number(text: str) -> Any:
    """``text`` as an int when it is one (the typed config refuses the rest by name)."""
    try:
        return int(text)
    except ValueError:
        return text


def _parse_shape(text: str | None, flag: str = "--input-size") -> tuple[int, ...] | None:
    """``3,224,224`` as a shape, or a `ConfigError` naming ``flag``."""
    from finetuner.core.fields import parse_value, require

    if text is None:
        return None
    shape = parse_value(flag, tuple(_number(v.strip()) for v in text.split(",")), tuple[int, ...])
    require(min(shape) >= 1, flag, shape, "positive sizes such as 3,224,224")
    return shape


def _flag(name: str) -> str:
    return name.replace("_", "-")


fit.__signature__ = _fit_signature()
command("fit")(fit)


def _print_metrics(metrics: dict[str, Any]) -> None:
    """Before -> after on the test data (never used for a choice), else on the validation data, with its parts."""
    scored = metrics.get("test") or metrics
    if "after" not in scored:
        return
    typer.echo("test data (never used for any choice):" if "test" in metrics else "validation data:")
    names = ("recall@1", "recall@5", "map@r", "ndcg@10", "mrr", "accuracy")
    keys = [p + k for p in ("", "seen/", "new/") for k in names if p + k in scored["after"]]
    typer.echo(f"{'metric':<15} {'before':>8} {'after':>8}")
    for key in keys:
        before = scored.get("before", {}).get(key, float("nan"))
        typer.echo(f"{key:<15} {before:>8.4f} {scored['after'][key]:>8.4f}")
    selection = metrics.get("selection")
    if selection:
        kept = f"epoch {selection['epoch']}" if selection["epoch"] is not None else f"mix alpha={selection['alpha']}"
        kept = "the untuned backbone" if selection.get("untuned") else kept
        refit = selection.get("refit")
        then = f" (then trained again on {refit['items']} training + validation items)" if refit else ""
        typer.echo(f"kept {kept}{then}: {selection.get('reason', '')}")


@command()
def probe(
    model: Annotated[str, typer.Argument(help="model name, timm name or folder")],
    train_data: Annotated[str, typer.Argument(help="labelled data: image folder, CSV, 'fashion-mnist', ...")],
    eval_data: Annotated[str | None, typer.Option(help="validation data (default: held out of TRAIN_DATA)")] = None,
    layers: Annotated[str, typer.Option(help="'auto', a count, or layer names separated by commas")] = "auto",
    heads: Annotated[
        str, typer.Option(help="heads separated by commas: none, linear:N, projection:N, residual:N")
    ] = "none,linear:128,residual:128,residual:256",
    sweep: Annotated[int, typer.Option(help="then tune the best head's settings with this many Optuna trials")] = 0,
    plot: Annotated[Path | None, typer.Option(help="save the leaderboard as a bar chart (PNG)")] = None,
    input_size: Annotated[str | None, typer.Option(help="one sample's shape, e.g. 3,224,224")] = None,
    pretrained: Annotated[bool, typer.Option(help="load pretrained weights from disk", metavar="")] = True,
    val_split: Annotated[
        float | None, typer.Option(help="without --eval-data, hold out this fraction of items (default: fit's)")
    ] = None,
    val_class_split: Annotated[
        float | None, typer.Option(help="... and this fraction of whole classes (default: fit's)")
    ] = None,
) -> None:
    """Find the best layer and head for your data in about one forward pass; print the leaderboard and the
    fit options of the winner."""
    import finetuner
    from finetuner.probing import plot_leaderboard

    chosen: Any = layers if layers == "auto" else int(layers) if layers.isdigit() else layers.split(",")
    size = _parse_shape(input_size)
    splits = {"val_split": val_split, "val_class_split": val_class_split}
    common = {"pretrained": pretrained, "input_size": size} | {k: v for k, v in splits.items() if v is not None}
    board = finetuner.probe(model, train_data, eval_data, layers=chosen, heads=heads.split(","), **common)
    typer.echo(str(board))
    if plot is not None:
        plot_leaderboard(board).savefig(plot)
    options = board.best.fit_options()
    if sweep:
        head = board.best.head if board.best.head != "none" else "projection"
        layer = board.best.layer_name
        result = finetuner.sweep(model, train_data, eval_data, layer=layer, head=head, n_trials=sweep, **common)
        typer.echo(str(result))
        options = result.fit_options()
    typer.echo(f"fit with: {json.dumps(options)}")


@command()
def preflight(
    model: Annotated[str, typer.Argument(help="model name, timm name or folder")],
    train_data: Annotated[str, typer.Argument(help="labelled data: image folder, CSV, 'fashion-mnist', ...")],
    eval_data: Annotated[str | None, typer.Option(help="validation data (default: held out of TRAIN_DATA)")] = None,
    shares: Annotated[str, typer.Option(help="shares of the labels, separated by commas")] = "0.1,0.25,0.5,1.0",
    seeds: Annotated[int, typer.Option(help="seeds per share (the spread is over them)")] = 3,
    probe: Annotated[bool, typer.Option(help="also rank layers x heads with the probe (costs more)")] = False,
    output: Annotated[Path, typer.Option(help="JSON file of the report")] = Path("preflight.json"),
    plot: Annotated[Path | None, typer.Option(help="save the gain curve (PNG)")] = None,
    report: Annotated[Path | None, typer.Option(help="write an HTML report with the pre-flight here")] = None,
    config: Annotated[Path | None, typer.Option(help="fit's settings from a file (fit --print-config)")] = None,
    output_dim: Annotated[int, typer.Option(help="size of fit's head")] = 128,
    epochs: Annotated[int | None, typer.Option(help="epochs of each head (default: fit's)")] = None,
    input_size: Annotated[str | None, typer.Option(help="one sample's shape, e.g. 3,224,224")] = None,
    pretrained: Annotated[bool, typer.Option(help="load pretrained weights from disk", metavar="")] = True,
    val_split: Annotated[float | None, typer.Option(help="hold out this fraction of items (default: fit's)")] = None,
    val_class_split: Annotated[float | None, typer.Option(help="... and of whole classes (default: fit's)")] = None,
) -> None:
    """Will tuning help? From one cached pass, train fit's head on shares of the labels and print the gain over the
    untuned backbone per share (seen and new classes), the cost of a fit and a one-sentence verdict."""
    _setup_logging(False)
    import finetuner
    from finetuner.config import FitConfig

    given = {"epochs": epochs, "input_size": _parse_option("input_size", input_size) if input_size else None,
             "val_split": val_split, "val_class_split": val_class_split}  # fmt: skip
    options = {"pretrained": pretrained, "output_dim": output_dim} | {k: v for k, v in given.items() if v is not None}
    base = FitConfig.load(config) if config is not None else None
    fractions = [float(share) for share in shares.split(",") if share.strip()]
    found = finetuner.preflight(
        model, train_data, eval_data, shares=fractions, seeds=seeds, probe=probe, config=base, **options
    )
    typer.echo(str(found))
    typer.echo(f"report: {found.save(output)}")
    if plot is not None:
        found.plot().savefig(plot)
    if report is not None:
        typer.echo(f"HTML report: {found.write_report(report)}")


@command("eval")
def evaluate(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    query_data: Annotated[str, typer.Argument(help="labelled data (folder, CSV) or pairs")],
    index_data: Annotated[str | None, typer.Argument(help="data to search; default: leave-one-out")] = None,
    batch_size: Annotated[int, typer.Option()] = 64,
) -> None:
    """Retrieval metrics of a saved model (Recall@k, Precision@k, mAP, nDCG@k, MRR) as JSON."""
    from finetuner.api import evaluate as evaluate_model

    metrics = evaluate_model(str(model), query_data, index_data, batch_size=batch_size)
    typer.echo(json.dumps(metrics, indent=2))


@command()
def encode(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    items: Annotated[list[str], typer.Argument(help="image files, texts, folders, CSV or .txt files (one per line)")],
    output: Annotated[Path, typer.Option(help=".npy file for the (N, D) embeddings")] = Path("embeddings.npy"),
    batch_size: Annotated[int, typer.Option()] = 64,
) -> None:
    """Embed images or texts with a saved model and write a .npy file."""
    import numpy as np

    from finetuner.api import load

    expanded = [item for given in items for item in (_read_items(given) if _is_collection(given) else [given])]
    vectors = load(model).encode(expanded, batch_size)
    np.save(output, vectors)
    typer.echo(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {output}")


@command()
def export(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    output: Annotated[Path, typer.Argument(help="the file (onnx, onnx-int8) or folder to write")] = Path("model.onnx"),
    format: Annotated[
        str, typer.Option(help="onnx, onnx-int8, sentence-transformers (text models) or timm (image models)")
    ] = "onnx",
    normalize: Annotated[
        bool, typer.Option(help="onnx formats: end the graph with L2 normalisation", metavar="")
    ] = True,
    check_items: Annotated[
        str | None,
        typer.Option(help="real items to check the export on: an image folder, or a text file with one per line "
                     "(default: the training items saved with the model)"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a file already at OUTPUT")] = False,
) -> None:
    """Export a saved model to another tool's format, checked against the model itself on real items."""
    from finetuner.api import load

    if not normalize and format not in ("onnx", "onnx-int8"):
        raise ValueError(f"--no-normalize applies to the onnx formats only, not to {format!r}.")
    options = {} if normalize else {"normalize": False}
    if check_items is not None:
        options["check_items"] = check_items if Path(check_items).is_dir() else _read_items(check_items)
    path = load(model).export(output, format, overwrite=overwrite, **options)
    typer.echo(f"wrote {path}")


@command()
def index(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    data: Annotated[str, typer.Argument(help="an image folder, a CSV, or a text file with one item per line")],
    output: Annotated[Path, typer.Option(help="folder for the index")] = Path("finetuner-index"),
    kind: Annotated[
        str, typer.Option(help="flat (exact), ivf, hnsw, int8 (4x smaller) or binary (32x smaller)")
    ] = "flat",
) -> None:
    """Encode a collection with a saved model and write a search index next to the model's name."""
    from finetuner.api import load

    embedding_model = load(model)
    items = _read_items(data)
    built = embedding_model.build_index(items, kind=kind)
    built.save(output)
    (output / "model.txt").write_text(str(model.resolve()))
    typer.echo(f"indexed {len(built)} items into {output}")


@command()
def search(
    index_folder: Annotated[Path, typer.Argument(help="a folder written by `finetuner index`")],
    queries: Annotated[list[str], typer.Argument(help="query images or texts")],
    k: Annotated[int, typer.Option("-k", help="results per query")] = 5,
    model: Annotated[Path | None, typer.Option(help="model folder (default: the one the index was built with)")] = None,
) -> None:
    """Find the items most similar to each query in an index built by `finetuner index`."""
    from finetuner.api import load
    from finetuner.search import Index

    if not (index_folder / "model.txt").is_file():
        raise FileNotFoundError(
            f"{index_folder} is no index folder: build one with `finetuner index MODEL DATA --output {index_folder}`."
        )
    model_folder = model or Path((index_folder / "model.txt").read_text().strip())
    found = Index.load(index_folder).search_results(load(model_folder).encode(queries), k)
    for query, results in zip(queries, found):
        typer.echo(query)
        for rank, result in enumerate(results, 1):
            shown = result["payload"] if result["payload"] is not None else result["id"]
            typer.echo(f"  {rank}. {result['score']:.4f}  {shown}")


def _is_collection(item: str) -> bool:
    """A folder, CSV or .txt file that holds many items (anything else is one image path or text)."""
    path = Path(item)
    return path.is_dir() or (path.is_file() and path.suffix in (".csv", ".txt"))


def _read_items(data: str) -> list:
    """Items of a folder/CSV (via `load_data`), or the lines of a .txt file."""
    path = Path(data)
    if path.suffix == ".txt" and path.is_file():
        return [line for line in path.read_text().splitlines() if line.strip()]
    from finetuner.data import load_data

    loaded = load_data(data)
    return list(loaded.items) if hasattr(loaded, "items") else list(loaded.documents)


def main() -> None:
    """Entry point of the `finetuner` console script."""
    app()


if __name__ == "__main__":
    main()

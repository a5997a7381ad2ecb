"""The `finetuner` command: list-models, display, fit, eval, encode, export, index, search.

Heavy libraries (torch, timm, transformers) are imported inside the commands, so `finetuner --help` is fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Turn a pretrained model into a task-specific embedding model or classifier, on your own data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEMO_MODEL = "efficientnet_lite0"
DEMO_TRAIN = "fashion-mnist"
DEMO_EVAL = "fashion-mnist:test"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("finetuner").setLevel(logging.DEBUG if verbose else logging.INFO)


def _parse_freeze(value: str) -> bool | str | list[str]:
    """``true``/``false``, ``first:N``, or comma-separated layer names."""
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "all"):
        return True
    if lowered in ("false", "no", "0", "none", ""):
        return False
    if lowered.startswith("first:"):
        return value.strip()
    return [name.strip() for name in value.split(",") if name.strip()]


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command("list-models")
def list_models_command(pattern: Annotated[str, typer.Argument(help="fnmatch pattern, e.g. 'resnet*'")] = "*") -> None:
    """List registered model names with backend, embedding size and weight source (any timm name works too)."""
    from finetuner.api import list_models

    entries = list_models(pattern)
    width = max((len(e.name) for e in entries), default=4)
    typer.echo(f"{'name':<{width}}  {'backend':<11}  {'dim':>5}  weights")
    for entry in entries:
        dim = str(entry.output_dim) if entry.output_dim else "-"
        typer.echo(f"{entry.name:<{width}}  {entry.backend:<11}  {dim:>5}  {entry.weights}")


@app.command()
def display(
    model: Annotated[str, typer.Argument(help="model name, timm name or saved folder")],
    input_size: Annotated[str | None, typer.Option(help="one sample's shape, e.g. 3,224,224")] = None,
) -> None:
    """Show a model's layers in execution order: name, type, output shape, parameters, trainable, dense."""
    from finetuner.api import display as display_model
    from finetuner.model import is_saved_model

    try:
        size = tuple(int(v) for v in input_size.split(",")) if input_size else None
        if is_saved_model(model):
            from finetuner.api import load

            display_model(load(model))
        else:
            display_model(model, input_size=size)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)


@app.command()
def fit(
    model: Annotated[str, typer.Argument(help="model name, timm name or folder")] = DEMO_MODEL,
    train_data: Annotated[str, typer.Argument(help="image folder, CSV, 'fashion-mnist' or 'fortunes'")] = DEMO_TRAIN,
    eval_data: Annotated[str | None, typer.Option(help="evaluation data (default: the demo's test split)")] = None,
    task: Annotated[str, typer.Option(help="embedding or classification")] = "embedding",
    freeze: Annotated[str, typer.Option(help="true, false, first:N, or layer names separated by commas")] = "true",
    output_dim: Annotated[int, typer.Option(help="size of the projection head's output; 0: no head")] = 128,
    layer_name: Annotated[str | None, typer.Option(help="cut the model after this layer")] = None,
    head: Annotated[str, typer.Option(help="projection or linear")] = "projection",
    loss: Annotated[str | None, typer.Option(help="loss name, e.g. TripletMarginLoss, ArcFaceLoss")] = None,
    miner: Annotated[str | None, typer.Option(help="miner name, e.g. MultiSimilarityMiner")] = None,
    epochs: Annotated[int, typer.Option()] = 10,
    batch_size: Annotated[int, typer.Option()] = 64,
    learning_rate: Annotated[float, typer.Option()] = 1e-3,
    optimizer: Annotated[str, typer.Option()] = "adam",
    scheduler: Annotated[str | None, typer.Option(help="cosine or linear")] = None,
    val_split: Annotated[float, typer.Option(help="hold out this fraction of the training data")] = 0.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16, fp16")] = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    augment: Annotated[bool, typer.Option(help="light training augmentation (crop, flip)")] = True,
    cache: Annotated[bool, typer.Option(help="cache frozen-backbone features")] = True,
    cache_views: Annotated[int, typer.Option(help="augmented views to cache per item")] = 1,
    lora: Annotated[bool, typer.Option(help="train LoRA adapters on the backbone")] = False,
    pretrained: Annotated[bool, typer.Option(help="load pretrained weights from disk")] = True,
    output_dir: Annotated[Path, typer.Option(help="where model/, checkpoints/ and report/ go")] = Path(
        "finetuner-output"
    ),
    resume: Annotated[bool, typer.Option(help="continue from output_dir/checkpoints")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Fine-tune a model. With no arguments: EfficientNet-Lite0 on the embedded Fashion-MNIST subset."""
    _setup_logging(verbose)
    from finetuner.api import fit as fit_model

    if eval_data is None and val_split == 0 and train_data == DEMO_TRAIN:
        eval_data = DEMO_EVAL
    checkpoints = output_dir / "checkpoints"
    try:
        run = fit_model(
            model,
            train_data,
            eval_data,
            task=task,
            freeze=_parse_freeze(freeze),
            output_dim=output_dim if task == "embedding" and output_dim > 0 else None,
            layer_name=layer_name,
            head=head,
            loss=loss,
            miner=miner,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            scheduler=scheduler,
            val_split=val_split,
            device=device,
            precision=precision,
            seed=seed,
            augment=augment,
            cache=cache,
            cache_views=cache_views,
            lora=lora or None,
            pretrained=pretrained,
            output_dir=output_dir,
            resume_from=checkpoints if resume and checkpoints.exists() else None,
        )
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    _print_metrics(run.metrics)
    typer.echo(f"model saved to {output_dir / 'model'}  (load it with finetuner.load('{output_dir / 'model'}'))")
    typer.echo(f"report: {output_dir / 'report' / 'report.html'}")


def _print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    if "after" not in metrics:
        return
    keys = [k for k in ("recall@1", "recall@5", "map@r", "ndcg@10", "mrr", "accuracy") if k in metrics["after"]]
    typer.echo(f"{'metric':<10} {'before':>8} {'after':>8}")
    for key in keys:
        before = metrics.get("before", {}).get(key, float("nan"))
        typer.echo(f"{key:<10} {before:>8.4f} {metrics['after'][key]:>8.4f}")


@app.command("eval")
def evaluate(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    query_data: Annotated[str, typer.Argument(help="labelled data (folder, CSV) or pairs")],
    index_data: Annotated[str | None, typer.Argument(help="data to search; default: leave-one-out")] = None,
    batch_size: Annotated[int, typer.Option()] = 64,
) -> None:
    """Retrieval metrics of a saved model (Recall@k, Precision@k, mAP, nDCG@k, MRR) as JSON."""
    from finetuner.api import evaluate as evaluate_model

    try:
        metrics = evaluate_model(str(model), query_data, index_data, batch_size=batch_size)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    typer.echo(json.dumps(metrics, indent=2))


@app.command()
def encode(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    items: Annotated[list[str], typer.Argument(help="image files or texts")],
    output: Annotated[Path, typer.Option(help=".npy file for the (N, D) embeddings")] = Path("embeddings.npy"),
    batch_size: Annotated[int, typer.Option()] = 64,
) -> None:
    """Embed images or texts with a saved model and write a .npy file."""
    import numpy as np

    from finetuner.api import load

    try:
        vectors = load(model).encode(items, batch_size)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    np.save(output, vectors)
    typer.echo(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {output}")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    output: Annotated[Path, typer.Argument(help="the file (onnx, onnx-int8) or folder to write")] = Path("model.onnx"),
    format: Annotated[
        str, typer.Option(help="onnx, onnx-int8, sentence-transformers (text models) or timm (image models)")
    ] = "onnx",
    normalize: Annotated[bool, typer.Option(help="onnx formats: end the graph with L2 normalisation")] = True,
) -> None:
    """Export a saved model to another tool's format, checked against the model itself."""
    from finetuner.api import load

    try:
        if not normalize and format not in ("onnx", "onnx-int8"):
            raise ValueError(f"--no-normalize applies to the onnx formats only, not to {format!r}.")
        options = {} if normalize else {"normalize": False}
        path = load(model).export(output, format, **options)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    typer.echo(f"wrote {path}")


@app.command()
def index(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    data: Annotated[str, typer.Argument(help="an image folder, a CSV, or a text file with one item per line")],
    output: Annotated[Path, typer.Option(help="folder for the index")] = Path("finetuner-index"),
    kind: Annotated[str, typer.Option(help="flat (exact), ivf or hnsw")] = "flat",
) -> None:
    """Encode a collection with a saved model and write a search index next to the model's name."""
    from finetuner.api import load

    try:
        embedding_model = load(model)
        items = _read_items(data)
        built = embedding_model.build_index(items, kind=kind)
        built.save(output)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    (output / "model.txt").write_text(str(model.resolve()))
    typer.echo(f"indexed {len(built)} items into {output}")


@app.command()
def search(
    index_folder: Annotated[Path, typer.Argument(help="a folder written by `finetuner index`")],
    queries: Annotated[list[str], typer.Argument(help="query images or texts")],
    k: Annotated[int, typer.Option("-k", help="results per query")] = 5,
    model: Annotated[Path | None, typer.Option(help="model folder (default: the one the index was built with)")] = None,
) -> None:
    """Find the items most similar to each query in an index built by `finetuner index`."""
    from finetuner.api import load
    from finetuner.search import Index

    try:
        model_folder = model or Path((index_folder / "model.txt").read_text().strip())
        found = Index.load(index_folder).search_results(load(model_folder).encode(queries), k)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    for query, results in zip(queries, found):
        typer.echo(query)
        for rank, result in enumerate(results, 1):
            shown = result["payload"] if result["payload"] is not None else result["id"]
            typer.echo(f"  {rank}. {result['score']:.4f}  {shown}")


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

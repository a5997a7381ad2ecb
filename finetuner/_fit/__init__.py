"""The steps of `finetuner.fit`, in the order `api.fit` calls them: prepare the data (`data`), probe automatic
choices (`auto`), plan the training on the `FeatureSource` that serves the run (`plan`, `sources`), and leave the
outputs behind (`outputs`)."""

from finetuner._fit.auto import choose_layer_and_head
from finetuner._fit.data import (
    FitData,
    apply_data_options,
    build_objective,
    check_data,
    columns,
    data_kind,
    prepare_data,
)
from finetuner._fit.outputs import card_data, retrieval_examples, write_outputs
from finetuner._fit.plan import (
    TrainingPlan,
    fit_callbacks,
    initialize_head,
    model_selection,
    plan_training,
    refit,
    run_metrics,
    selection_summary,
)
from finetuner._fit.search import choose_recipe
from finetuner._fit.sources import (
    SOURCES,
    CachedFeatures,
    FeatureSource,
    QueryAdapterFeatures,
    RawItems,
    choose_source,
    head_outputs,
)
from finetuner._fit.vectors import resolve_vectors

__all__ = [
    "SOURCES",
    "CachedFeatures",
    "FeatureSource",
    "FitData",
    "QueryAdapterFeatures",
    "RawItems",
    "TrainingPlan",
    "apply_data_options",
    "build_objective",
    "card_data",
    "check_data",
    "choose_layer_and_head",
    "choose_recipe",
    "choose_source",
    "columns",
    "data_kind",
    "fit_callbacks",
    "head_outputs",
    "initialize_head",
    "model_selection",
    "plan_training",
    "prepare_data",
    "refit",
    "resolve_vectors",
    "retrieval_examples",
    "run_metrics",
    "selection_summary",
    "write_outputs",
]

"""The format registry: lookup order, errors for unreadable sources, formats added by users."""

import pkgutil

import numpy as np
import pytest

from finetuner.data import DataError, DataFormat, DataKind, PairData, formats, list_formats, load_data, register_format
from finetuner.data.formats import find_format


def test_every_built_in_format_is_found_in_the_folder_once_with_a_description():
    built_in = [f for f in list_formats() if type(f).__module__.startswith(formats.__name__ + ".")]
    modules = {module.name for module in pkgutil.iter_modules(formats.__path__)} - {"base", "table"}
    assert {type(f).__module__.rpartition(".")[2] for f in built_in} == modules  # one format per module
    assert len({f.name for f in built_in}) == len(built_in) and all(f.description for f in built_in)
    assert [f.name for f in built_in][:2] == ["named", "image_folder"]  # names before paths: "fortunes" is ours


def test_unreadable_sources_say_what_is_supported(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_data(tmp_path / "nope.csv")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(DataError, match="expected a folder .* or a file ending in .csv, .jsonl, .ndjson, .parquet"):
        load_data(tmp_path / "data.json")
    with pytest.raises(DataError, match="cannot load data from the int: expected .*a pandas DataFrame; .*dicts"):
        load_data(3)


def test_kind_names_are_checked():
    with pytest.raises(ValueError, match="kind must be one of 'auto', 'labeled', 'pairs', 'scored_pairs', 'triplets'"):
        load_data("fortunes", kind="pair")


def test_loaded_data_passes_through_with_its_kind_checked():
    pairs = PairData(["q"], ["d"])
    assert load_data(pairs, kind="pairs") is pairs
    with pytest.raises(DataError, match="kind='labeled' was asked for, but the PairData holds pairs"):
        load_data(pairs, kind="labeled")


class _ArrayPairs(DataFormat):
    name, description = "array_pairs", "an (N, 2) array of strings"

    def can_read(self, source):
        return isinstance(source, np.ndarray) and source.ndim == 2 and source.shape[1] == 2

    def read(self, source, columns, kind):
        return PairData(source[:, 0].tolist(), source[:, 1].tolist())


def test_a_registered_format_is_asked_first():
    array = np.array([["q1", "d1"], ["q2", "d2"]])
    with pytest.raises(DataError, match="cannot load data from the ndarray"):
        load_data(array)
    register_format(_ArrayPairs())
    assert list_formats()[0].name == "array_pairs" and find_format(array).name == "array_pairs"
    assert load_data(array, kind=DataKind.PAIRS).documents == ["d1", "d2"]
    with pytest.raises(TypeError, match="takes a DataFormat instance"):
        register_format(_ArrayPairs)
    formats.DATA_FORMATS.unregister("array_pairs")
    with pytest.raises(ValueError, match="data format named 'csv' is already registered.*CsvFormat"):
        register_format(type("Csv2", (_ArrayPairs,), {"name": "csv"})())

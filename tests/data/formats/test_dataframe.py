"""pandas DataFrames: any column names, missing values reported by row."""

import numpy as np
import pandas as pd
import pytest

from finetuner.data import DataError, load_data


def test_categorical_labels_and_non_string_column_names():
    frame = pd.DataFrame({0: ["a", "b", "c"], "label": pd.Categorical(["x", "y", "x"])})
    data = load_data(frame, columns={"text": "0"})
    assert (data.items, data.labels, data.classes) == (["a", "b", "c"], [0, 1, 0], ["x", "y"])


def test_missing_values_are_reported_by_row():
    frame = pd.DataFrame({"query": ["q1", "q2"], "document": ["d1", np.nan]})
    with pytest.raises(DataError, match="the DataFrame, row 1: empty 'document'"):
        load_data(frame)

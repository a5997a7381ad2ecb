"""Lists of dicts: keys are columns, rows may leave keys out."""

import pytest

from finetuner.data import DataError, load_data


def test_keys_of_all_rows_are_columns_and_missing_keys_are_reported():
    rows = [{"query": "q1", "document": "d1"}, {"query": "q2", "document": "d2", "score": 0.5}]
    with pytest.raises(DataError, match="the list of dicts, row 0: empty 'score'"):
        load_data(rows)
    rows[0]["score"] = 1
    assert load_data(rows).scores == [1.0, 0.5]


def test_a_row_that_is_not_a_dict_raises():
    with pytest.raises(DataError, match="row 1: expected a dict of column values, got tuple"):
        load_data([{"text": "a", "label": "x"}, ("b", "y")])

"""JSON Lines: one object per line, blank lines skipped, errors name the line."""

import json

import pytest

from finetuner.data import DataError, load_data


def test_rows_with_extra_keys_and_relative_image_paths(image_folder):
    path = image_folder / "data.jsonl"
    rows = [{"image": "cat/a.jpg", "label": "cat", "id": 1}, {"image": "dog/a.jpg", "label": "dog"}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    data = load_data(path)
    assert data.items == [str(image_folder / "cat/a.jpg"), str(image_folder / "dog/a.jpg")]
    assert data.classes == ["cat", "dog"]


def test_bad_lines_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match="bad.jsonl, line 3: not valid JSON"):
        load_data(path)
    path.write_text('{"text": "a", "label": "x"}\n["b", "y"]\n')
    with pytest.raises(DataError, match="line 2: expected a dict of column values, got list"):
        load_data(path)
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b"}\n')
    with pytest.raises(DataError, match="line 3: empty 'label'"):
        load_data(path)

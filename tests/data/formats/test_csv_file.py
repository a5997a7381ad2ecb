"""CSV: header names stripped and matched ignoring case, blank lines skipped, paths relative to the file."""

import csv

import pytest

from finetuner.data import DataError, PairData, load_data


def write_csv(path, rows):
    with path.open("w", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


@pytest.mark.parametrize("column", ["path", "image", "Image"])
def test_image_paths_are_relative_to_the_csv(image_folder, column):
    rows = [[column, "label"], ["cat/a.jpg", "cat"], ["dog/a.jpg", "dog"], [str(image_folder / "fish/x.webp"), "fish"]]
    data = load_data(write_csv(image_folder / "list.csv", rows))
    assert data.items == [str(image_folder / name) for name in ("cat/a.jpg", "dog/a.jpg", "fish/x.webp")]
    assert (data.labels, data.classes) == ([0, 1, 2], ["cat", "dog", "fish"])


def test_mapped_image_column_is_checked_too(tmp_path):
    path = write_csv(tmp_path / "list.csv", [["file", "class"], ["gone.jpg", "a"]])
    with pytest.raises(DataError, match="not found, e.g. .*gone.jpg; paths are relative to .*list.csv's folder"):
        load_data(path, columns={"image": "file", "label": "class"})


def test_header_and_values_are_stripped_and_blank_lines_skipped(tmp_path):
    texts = load_data(write_csv(tmp_path / "t.csv", [["Text", " Label"], ["good film ", "pos"], [], ["bad", "neg"]]))
    assert (texts.items, texts.labels, texts.classes) == (["good film", "bad"], [1, 0], ["neg", "pos"])


def test_errors_name_the_line(tmp_path):
    with pytest.raises(DataError, match="line 4: empty 'label'"):
        load_data(write_csv(tmp_path / "b.csv", [["text", "label"], ["x", "y"], [], ["z", ""]]))
    with pytest.raises(DataError, match="has no rows"):
        load_data(write_csv(tmp_path / "c.csv", [["text", "label"]]))


def test_pairs_link_image_files_next_to_the_csv_and_keep_texts(image_folder):
    rows = [["query", "document"], ["a red cat", "cat/a.jpg"], ["a photo.jpg of nothing", "missing.png"]]
    pairs = load_data(write_csv(image_folder / "pairs.csv", rows))
    assert isinstance(pairs, PairData)
    assert pairs.documents == [str(image_folder / "cat/a.jpg"), "missing.png"]
    assert pairs.queries == ["a red cat", "a photo.jpg of nothing"]


def test_unreadable_csv_raises(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="cannot read CSV .*save it as UTF-8"):
        load_data(path)

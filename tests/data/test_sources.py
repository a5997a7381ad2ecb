import csv
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from finetuner.data import DataError, LabeledData, PairData, check_at_least_two_classes, encode_labels, load_data

from .conftest import write_image


def test_folder_gives_sorted_items_and_class_names(image_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_data(image_folder)
    assert data.classes == ["cat", "dog", "fish"]
    assert data.labels == [0, 0, 0, 1, 1, 2]
    names = [p.replace(str(image_folder), "").replace("\\", "/") for p in data.items]
    assert names == ["/cat/a.jpg", "/cat/b.png", "/cat/c.PNG", "/dog/a.jpg", "/dog/sub/b.bmp", "/fish/x.webp"]


def test_folder_warns_about_loose_images_empty_classes_and_other_files(image_folder):
    write_image(image_folder / "loose.jpg")
    (image_folder / "empty").mkdir()
    (image_folder / "dog" / "notes.txt").write_text("x")
    with pytest.warns(UserWarning) as record:
        data = load_data(image_folder)
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller
    message = str(record[0].message)
    assert "loose.jpg" in message and "empty" in message and "notes.txt" in message
    assert data.classes == ["cat", "dog", "fish"]


def test_empty_folder_and_flat_folder_raise(tmp_path):
    with pytest.raises(DataError, match="no images found .* one subfolder per class"):
        load_data(tmp_path)
    write_image(tmp_path / "a.jpg")
    with pytest.raises(DataError, match="move them into class subfolders"):
        load_data(tmp_path)


def test_unknown_path_and_unsupported_file_raise(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_data(tmp_path / "nope")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(DataError, match="expected a folder"):
        load_data(tmp_path / "data.json")
    with pytest.raises(DataError, match="cannot load data from a int"):
        load_data(3)


def write_csv(path, rows):
    with path.open("w", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


@pytest.mark.parametrize("column", ["path", "image"])
def test_csv_of_image_paths_relative_to_the_csv(image_folder, column):
    path = write_csv(
        image_folder / "list.csv",
        [
            [column, "label"],
            ["cat/a.jpg", "cat"],
            ["dog/a.jpg", "dog"],
            [str(image_folder / "fish" / "x.webp"), "fish"],
        ],
    )
    data = load_data(path)
    assert data.items == [
        str(image_folder / "cat/a.jpg"),
        str(image_folder / "dog/a.jpg"),
        str(image_folder / "fish" / "x.webp"),
    ]
    assert (data.labels, data.classes) == ([0, 1, 2], ["cat", "dog", "fish"])


def test_csv_missing_image_file_raises(tmp_path):
    path = write_csv(tmp_path / "list.csv", [["path", "label"], ["gone.jpg", "a"]])
    with pytest.raises(DataError, match="not found.*gone.jpg"):
        load_data(path)


def test_csv_of_texts_and_of_pairs(tmp_path):
    rows = [["Text", " Label"], ["good film", "pos"], ["bad", "neg"], ["", ""]]
    texts = load_data(write_csv(tmp_path / "t.csv", rows))
    assert (texts.items, texts.labels, texts.classes) == (["good film", "bad"], [1, 0], ["neg", "pos"])
    rows = [["query", "document", "score"], ["q1", "d1", "1"], ["q2", "d2", "0.5"]]
    pairs = load_data(write_csv(tmp_path / "p.csv", rows))
    assert isinstance(pairs, PairData)
    assert (pairs.queries, pairs.documents, pairs.scores) == (["q1", "q2"], ["d1", "d2"], [1.0, 0.5])
    unscored = load_data(write_csv(tmp_path / "u.csv", [["query", "document"], ["q", "d"]]))
    assert unscored.scores is None


def test_csv_errors_list_columns_and_lines(tmp_path):
    with pytest.raises(DataError, match=r"columns \['file', 'class'\]; accepted headers are path,label"):
        load_data(write_csv(tmp_path / "a.csv", [["file", "class"], ["x", "y"]]))
    with pytest.raises(DataError, match="line 3: empty 'label'"):
        load_data(write_csv(tmp_path / "b.csv", [["text", "label"], ["x", "y"], ["z", ""]]))
    with pytest.raises(DataError, match="no rows"):
        load_data(write_csv(tmp_path / "c.csv", [["text", "label"]]))
    with pytest.raises(DataError, match="score must be a number"):
        load_data(write_csv(tmp_path / "d.csv", [["query", "document", "score"], ["q", "d", "high"]]))


def test_list_of_items_with_string_or_int_labels():
    data = load_data([("a.jpg", "dog"), ("b.jpg", "cat"), ("c.jpg", "dog")])
    assert (data.items, data.labels, data.classes) == (["a.jpg", "b.jpg", "c.jpg"], [1, 0, 1], ["cat", "dog"])
    arrays = [np.zeros((4, 4), np.uint8)] * 3
    data = load_data(list(zip(arrays, [7, 3, np.int64(7)])))
    assert (data.labels, data.classes) == ([1, 0, 1], ["3", "7"])
    assert encode_labels(["10", "2", "2"]) == ([1, 0, 0], ["2", "10"])
    with pytest.raises(DataError, match="mix strings and numbers"):
        load_data([("a", 1), ("b", "x")])
    with pytest.raises(DataError, match="empty"):
        load_data([])


def test_list_of_string_pairs_and_kind_override():
    pairs = load_data([("how to reset", "hold the button"), ("price", "10 EUR")])
    assert isinstance(pairs, PairData) and pairs.documents == ["hold the button", "10 EUR"]
    texts = load_data([("great", "positive"), ("awful", "negative"), ("fine", "positive")])
    assert isinstance(texts, LabeledData) and texts.classes == ["negative", "positive"]
    forced = load_data([("great", "positive"), ("awful", "negative")], kind="labeled")
    assert isinstance(forced, LabeledData)
    assert isinstance(load_data([("great", "positive"), ("fine", "positive")], kind="pairs"), PairData)
    with pytest.raises(DataError, match="kind='pairs'"):
        load_data("fashion-mnist", kind="pairs")


class _Items(Dataset):
    """A Dataset without a targets attribute, counting how often items are read."""

    def __init__(self):
        self.reads = 0

    def __len__(self):
        return 4

    def __getitem__(self, i):
        self.reads += 1
        return torch.full((3, 2, 2), float(i)), ["b", "a"][i % 2]


def test_torch_dataset_items_stay_lazy():
    data = load_data(TensorDataset(torch.zeros(4, 3, 2, 2), torch.tensor([2, 0, 2, 5])))
    assert (data.labels, data.classes) == ([1, 0, 1, 2], ["0", "2", "5"])
    dataset = _Items()
    data = load_data(dataset)
    assert (data.labels, data.classes) == ([1, 0, 1, 0], ["a", "b"])
    reads = dataset.reads
    subset = data.subset([3, 1])
    assert dataset.reads == reads  # nothing read until an item is used
    assert subset.items[0][0, 0, 0] == 3.0 and len(subset.items) == 2


def test_torch_dataset_with_targets_and_classes_keeps_class_names():
    class Named(TensorDataset):
        classes = ["zero", "one", "two"]

    dataset = Named(torch.zeros(3, 1), torch.tensor([2, 0, 2]))
    dataset.targets = [2, 0, 2]
    assert load_data(dataset).classes == ["zero", "two"]


def test_check_at_least_two_classes():
    check_at_least_two_classes(LabeledData(["a", "b"], [0, 1], ["x", "y"]))
    single = load_data([("a.jpg", "cat"), ("b.jpg", "cat")])
    assert single.classes == ["cat"]  # loading one class is allowed
    with pytest.raises(DataError, match="at least 2 classes.*only class 'cat'.*one class"):
        check_at_least_two_classes(single)


def test_labeled_data_validates():
    with pytest.raises(DataError, match="one label per item"):
        LabeledData(["a"], [0, 1], ["x", "y"])
    with pytest.raises(DataError, match="range"):
        LabeledData(["a"], [2], ["x", "y"])
    with pytest.raises(DataError, match="one document per query"):
        PairData(["q"], [])


def test_split_is_stratified_and_seeded():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    data = LabeledData(list(range(100)), labels, ["a", "b", "c"])
    rest, part = data.split(0.2, seed=1)
    assert (len(rest), len(part)) == (80, 20)
    assert np.bincount(part.labels).tolist() == [10, 6, 4]
    assert sorted(rest.items + part.items) == list(range(100))
    assert part.items == data.split(0.2, seed=1)[1].items
    assert part.items != data.split(0.2, seed=2)[1].items
    uneven = LabeledData(list(range(7)), [0, 0, 0, 1, 1, 1, 2], ["a", "b", "c"])
    assert len(uneven.split(0.3)[1]) == 2
    with pytest.raises(DataError, match="one part would be empty"):
        LabeledData(["a"], [0], ["x"]).split(0.2)
    with pytest.raises(ValueError):
        data.split(1.0)


def test_pair_split_is_seeded():
    pairs = PairData([f"q{i}" for i in range(10)], [f"d{i}" for i in range(10)], [float(i) for i in range(10)])
    rest, part = pairs.split(0.3, seed=0)
    assert (len(rest), len(part)) == (7, 3)
    assert [f"q{int(s)}" for s in part.scores] == part.queries
    assert part.queries == pairs.split(0.3, seed=0)[1].queries


def test_csv_triplets_give_hard_negatives(tmp_path):
    path = tmp_path / "triplets.csv"
    path.write_text("query,document,negative\ncat,the cat sat,a good movie\ndog,the dog ran,a bad film\n")
    data = load_data(path)
    assert data.queries == ["cat", "dog"] and data.negatives == ["a good movie", "a bad film"]
    assert data.subset([1]).negatives == ["a bad film"]

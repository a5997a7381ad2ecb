"""Image folders: one subfolder per class, sorted items, warnings for what is skipped."""

import warnings

import pytest

from finetuner.data import DataError, load_data

from ..conftest import write_image


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


def test_folder_is_labelled_data_only(image_folder):
    with pytest.raises(DataError, match="kind='pairs' was asked for, but .*images holds labelled items"):
        load_data(image_folder, kind="pairs")
    with pytest.raises(DataError, match="columns= applies to tables .*not to a folder of images"):
        load_data(image_folder, columns={"label": "class"})

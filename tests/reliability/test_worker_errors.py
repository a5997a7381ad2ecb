"""A bad file met while encoding or training, in the main process or in a DataLoader worker, is the user's own
one-line `DataError` naming the file, not torch's "Caught DataError in DataLoader worker process 0" traceback."""

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import finetuner
from finetuner.data import DataError, LabeledData


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD_FILES = {
    "corrupt.jpg": lambda p: p.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg" + bytes(range(256))),
    "truncated.png": lambda p: p.write_bytes(png_bytes()[:60]),
    "notes.png": lambda p: p.write_text("this is a text file"),
    "empty.png": lambda p: p.write_bytes(b""),
    "missing.png": lambda p: None,
    "folder.jpg": lambda p: p.mkdir(),
}


def data_error(call) -> DataError:
    """The `DataError` that ``call()`` raises, without its traceback: the traceback's frames hold the loader, whose
    workers would otherwise live on until the next garbage collection."""
    try:
        call()
    except DataError as error:
        error.__traceback__ = None
        return error
    pytest.fail("no DataError raised")


def assert_one_line_about(error: DataError, path: Path) -> None:
    message = str(error)
    assert type(error) is DataError
    assert "\n" not in message and "Caught" not in message and "Traceback" not in message, message
    assert str(path) in message and "Remove or replace" in message, message


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_encode_names_the_bad_file_in_one_line(files, tmp_path, name, workers):
    bad = tmp_path / name
    BAD_FILES[name](bad)
    model = finetuner.build_model("test_cnn", pretrained=False, output_dim=8)
    error = data_error(lambda: model.encode([*files.items[:3], str(bad)], batch_size=2, num_workers=workers))
    assert_one_line_about(error, bad)


@pytest.mark.parametrize("name", ["truncated.png", "missing.png"])
def test_training_with_workers_names_the_bad_file_in_one_line(files, tmp_path, name):
    bad = tmp_path / name
    BAD_FILES[name](bad)
    data = LabeledData([*files.items, str(bad)], [*files.labels, 0], files.classes)
    options = dict(pretrained=False, output_dim=8, cache=False, epochs=1, batch_size=8, num_workers=1)
    error = data_error(lambda: finetuner.fit("test_cnn", data, output_dir=tmp_path / "out", **options))
    if name == "missing.png":  # found before training starts, with every missing file counted
        message = str(error)
        assert "\n" not in message and str(bad) in message and re.search(r"1 of \d+ image files do not exist", message)
    else:
        assert_one_line_about(error, bad)
    assert not (tmp_path / "out" / "model").exists()


def test_other_worker_errors_keep_their_traceback(tmp_path):
    """Only data errors are shortened: a bug in a user's dataset still shows where it happened."""
    from torch.utils.data import Dataset

    from finetuner.data import make_loader

    class Broken(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            raise KeyError("a bug in user code")

    with pytest.raises(KeyError, match="Traceback"):
        next(iter(make_loader(Broken(), 1, num_workers=1)))

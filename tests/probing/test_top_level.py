"""`finetuner.probe` / `finetuner.sweep` are the functions, with fit's option names and hold-out defaults."""

import finetuner
from finetuner.config import DataConfig
from finetuner.probing import Recipe
from finetuner.probing import probe as probe_function

from .conftest import IMAGE


def test_probe_and_sweep_are_top_level_functions():
    import finetuner.probing  # noqa: F401  (importing the package does not shadow the function)

    assert finetuner.probe is probe_function and callable(finetuner.sweep)


def test_probe_takes_fit_options_and_its_hold_out(cnn, small_data, cache_dir):
    common = dict(heads=["none"], layers=1, recipe=Recipe(epochs=1, device="cpu"), input_size=IMAGE, num_workers=0)
    board = finetuner.probe(cnn, small_data, cache_dir=cache_dir, **common)
    defaults = DataConfig()
    same = finetuner.probe(
        cnn, small_data, cache_dir=cache_dir, val_split=defaults.val_split,
        val_class_split=defaults.val_class_split, **common,
    )
    assert board[0].metrics == same[0].metrics
    other = finetuner.probe(cnn, small_data, cache_dir=cache_dir, val_split=0.3, **common)
    assert board[0].metrics != other[0].metrics

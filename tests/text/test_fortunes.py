"""The shipped text set: 6 fortune categories of short quotes, readable by load_data, with its licence."""

from collections import Counter
from pathlib import Path

import finetuner
from finetuner.data.sources import load_data

ASSETS = Path(finetuner.__file__).parent / "data" / "assets"


def test_fortunes_csv_loads_as_labelled_text():
    data = load_data(ASSETS / "text_fortunes.csv")
    assert data.classes == ["computers", "education", "food", "literature", "love", "science"]
    counts = Counter(data.classes[label] for label in data.labels)
    assert counts == {"computers": 150, "education": 150, "food": 150, "literature": 150, "love": 138, "science": 150}
    assert all(isinstance(text, str) and 20 <= len(text) < 300 for text in data.items)
    by_name = load_data("fortunes")
    assert by_name.items == data.items and by_name.labels == data.labels


def test_fortunes_licence_ships_alongside():
    licence = (ASSETS / "TEXT_FORTUNES_LICENSE.txt").read_text()
    assert "fortunes (1:1.99.1-7.3" in licence and "Redistribution and use in source and binary forms" in licence

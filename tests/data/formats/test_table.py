"""Every tabular format (CSV, JSONL, Parquet, DataFrame, dicts, datasets) through the same column rules."""

import pytest

from finetuner.data import DataError, DataKind, LabeledData, PairData, Table, load_data, table_to_data

TEXTS = {"text": ["good film", "bad", "great", "awful"], "label": ["pos", "neg", "pos", "neg"]}


def test_labelled_texts_round_trip(tabular):
    data = load_data(tabular(TEXTS))
    assert isinstance(data, LabeledData)
    assert (data.items, data.labels, data.classes) == (TEXTS["text"], [1, 0, 1, 0], ["neg", "pos"])


def test_columns_mapping_names_any_columns(tabular):
    source = tabular({"id": ["1", "2", "3"], "Sentence X": ["a", "b", "c"], "category": ["x", "y", "x"]})
    data = load_data(source, columns={"text": "Sentence X", "label": "category"})
    assert (data.items, data.labels, data.classes) == (["a", "b", "c"], [0, 1, 0], ["x", "y"])
    pairs = load_data(source, columns={"query": "id", "document": "Sentence X"})  # mapping pair roles: pairs
    assert isinstance(pairs, PairData) and pairs.queries == ["1", "2", "3"]


def test_sentence_transformers_column_names_need_no_mapping(tabular):
    triplets = load_data(tabular({"anchor": ["q1", "q2"], "positive": ["d1", "d2"], "negative": ["n1", "n2"]}))
    assert (triplets.queries, triplets.documents, triplets.negatives) == (["q1", "q2"], ["d1", "d2"], ["n1", "n2"])
    scored = load_data(tabular({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "score": [0.9, 0.25]}))
    assert (scored.queries, scored.documents, scored.scores) == (["a", "b"], ["c", "d"], [0.9, 0.25])
    assert load_data(tabular({"anchor": ["q"], "positive": ["d"]}), kind="pairs").scores is None


def test_mapped_triplet_and_scored_pair_columns(tabular):
    source = tabular({"q": ["q1", "q2"], "pos": ["d1", "d2"], "neg": ["n1", "n2"], "sim": [1, 0]})
    triplets = load_data(source, columns={"query": "q", "document": "pos", "negative": "neg"}, kind="triplets")
    assert triplets.negatives == ["n1", "n2"] and triplets.scores is None
    scored = load_data(source, columns={"query": "q", "document": "pos", "score": "sim"})
    assert scored.scores == [1.0, 0.0] and scored.negatives is None


def test_bad_column_name_lists_the_available_columns(tabular):
    with pytest.raises(DataError, match=r"column 'categry' \(columns\['label'\]\) is not in .*available columns: "):
        load_data(tabular(TEXTS), columns={"label": "categry"})
    with pytest.raises(DataError, match="text, label"):
        load_data(tabular(TEXTS), columns={"label": "categry"})


def test_unknown_columns_say_how_to_map_them(tabular):
    with pytest.raises(DataError, match=r"has columns file, class, none .* columns=\{'text': 'sentence'"):
        load_data(tabular({"file": ["x"], "class": ["y"]}))


def test_table_with_both_kinds_is_ambiguous_until_kind_is_given(tabular):
    source = tabular({"text": ["a", "b"], "label": ["x", "y"], "query": ["q1", "q2"], "document": ["d1", "d2"]})
    with pytest.raises(DataError, match="ambiguous.*pass kind='labeled' or kind='pairs'"):
        load_data(source)
    assert isinstance(load_data(source, kind="labeled"), LabeledData)
    assert load_data(source, kind=DataKind.PAIRS).documents == ["d1", "d2"]
    assert isinstance(load_data(source, columns={"query": "query"}), PairData)


def test_kind_that_the_table_does_not_hold_raises(tabular):
    pairs = tabular({"query": ["q1", "q2"], "document": ["d1", "d2"]})
    with pytest.raises(DataError, match=r"kind='scored_pairs' needs a score column .*columns=\{'score'"):
        load_data(pairs, kind="scored_pairs")
    with pytest.raises(DataError, match=r"kind='labeled' needs an item column .*columns=\{'text'"):
        load_data(pairs, kind="labeled")
    with pytest.raises(DataError, match="kind='labeled' contradicts columns="):
        load_data(pairs, kind="labeled", columns={"query": "query"})
    with pytest.raises(DataError, match="maps both labelled-data roles"):
        load_data(pairs, columns={"label": "query", "document": "document"})


def test_empty_values_and_non_numeric_scores_raise(tabular):
    with pytest.raises(DataError, match="empty 'label'; fill it in or remove the row"):
        load_data(tabular({"text": ["a", "b"], "label": ["x", None]}))
    with pytest.raises(DataError, match="'score' value must be a number"):
        load_data(tabular({"query": ["q"], "document": ["d"], "score": ["high"]}))


def test_unknown_columns_key_raises_value_error():
    rows = {"text": ["a"], "label": ["x"]}
    table = Table("the dict", list(rows), 1, rows.__getitem__)
    with pytest.raises(ValueError, match="unknown key 'txt' in columns=; accepted keys: image, path, text"):
        table_to_data(table, {"txt": "text"}, DataKind.AUTO)
    with pytest.raises(ValueError, match="names the item column twice"):
        table_to_data(table, {"text": "text", "image": "text"}, DataKind.AUTO)


def test_no_rows_raises():
    table = Table("the dict", ["text", "label"], 0, lambda name: [])
    with pytest.raises(DataError, match="has no rows"):
        table_to_data(table, {}, DataKind.AUTO)


def test_image_paths_in_memory_tables_must_exist(image_folder):
    rows = [{"image": str(image_folder / "cat" / "a.jpg"), "label": "cat"}, {"image": "gone.jpg", "label": "dog"}]
    with pytest.raises(DataError, match="1 image files not found, e.g. gone.jpg; paths are relative to the working"):
        load_data(rows)
    assert load_data(rows[:1]).items == [str(image_folder / "cat" / "a.jpg")]

"""ModelSelection: best validated candidate (epoch 0 included), guard on new classes, WiSE-FT fallback."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import finetuner
from finetuner.training.selection import ModelSelection


class Scalar(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value))


def fake_trainer(start: float, guard_of):
    """A trainer whose validation metrics are functions of one weight: selection = w, guard = guard_of(w)."""
    model = Scalar(start)

    def evaluate():
        w = model.w.item()
        return {"seen/map@r": w, "new/map@r": guard_of(w)}

    return SimpleNamespace(model=model, history=[], epoch=0, evaluate=evaluate)


def run_epochs(selection, trainer, weights):
    selection.on_fit_start(trainer)
    for epoch, w in enumerate(weights):
        trainer.epoch = epoch
        with torch.no_grad():
            trainer.model.w.fill_(w)
        trainer.history.append({"epoch": epoch + 1, **{f"eval/{k}": v for k, v in trainer.evaluate().items()}})
        selection.on_epoch_end(trainer)
    selection.on_fit_end(trainer)


def test_best_passing_epoch_is_restored_not_the_last():
    trainer = fake_trainer(0.0, guard_of=lambda w: 1.0 if w < 0.7 else 0.0)
    selection = ModelSelection("seen/map@r", "new/map@r", reference={"new/map@r": 1.0}, tolerance=0.01)
    run_epochs(selection, trainer, [0.3, 0.6, 0.9])  # epoch 3 is best on seen but collapses new classes
    assert float(trainer.model.w) == pytest.approx(0.6)
    assert selection.summary["epoch"] == 2 and selection.summary["alpha"] == 1.0


def test_epoch_zero_is_kept_when_training_only_hurts():
    trainer = fake_trainer(0.5, guard_of=lambda w: 1.0)
    selection = ModelSelection("seen/map@r", None)
    run_epochs(selection, trainer, [0.4, 0.2])
    assert float(trainer.model.w) == pytest.approx(0.5) and selection.summary["epoch"] == 0


def test_guard_picks_a_mixing_factor_when_every_epoch_collapses_new_classes():
    # The start is poor on new classes too (a fresh head); only a mix of start and tuned weights keeps them.
    trainer = fake_trainer(0.0, guard_of=lambda w: 1.0 - 2 * abs(w - 0.5))
    selection = ModelSelection("seen/map@r", "new/map@r", reference={"new/map@r": 0.95}, tolerance=0.05)
    run_epochs(selection, trainer, [0.9, 1.0])
    assert selection.summary["epoch"] is None and selection.summary["alpha"] == 0.5
    assert float(trainer.model.w) == pytest.approx(0.5)
    assert "WiSE-FT" in selection.summary["reason"]
    mixes = [c for c in selection.result()["candidates"] if c["epoch"] is None]
    assert [c["alpha"] for c in mixes] == [0.75, 0.5, 0.25, 0.0] and [c["passed"] for c in mixes] == [
        False, True, False, False
    ]


def test_no_passing_mix_keeps_the_one_that_loses_least():
    trainer = fake_trainer(0.0, guard_of=lambda w: 0.5 - 0.1 * w)
    selection = ModelSelection("seen/map@r", "new/map@r", reference={"new/map@r": 0.9}, tolerance=0.01)
    run_epochs(selection, trainer, [1.0])
    assert selection.summary["alpha"] == 0.0 and "loses least" in selection.summary["reason"]


def test_no_guard_without_reference():
    selection = ModelSelection("seen/map@r", "new/map@r", reference=None)
    assert selection.floor is None and selection.passes({"new/map@r": 0.0})


def test_fit_reports_the_selection_and_returns_the_chosen_candidate(small_data, tmp_path):
    run = finetuner.fit(
        "test_cnn", small_data, pretrained=False, freeze=True, output_dim=8, epochs=3, batch_size=16,
        cache_dir=tmp_path, val_split=0.25, val_class_split=0.3,
    )
    selection = run.metrics["selection"]
    assert selection["selection_key"] == "seen/map@r" and selection["guard_key"] == "new/map@r"
    assert [c["epoch"] for c in selection["candidates"][:4]] == [0, 1, 2, 3]
    kept = (selection["epoch"], selection["alpha"])
    chosen = [c for c in selection["candidates"] if (c["epoch"], c["alpha"]) == kept]
    # the returned model scores what its candidate scored on validation
    assert run.metrics["after"]["seen/map@r"] == pytest.approx(chosen[-1]["score"], abs=1e-6)
    assert {"seen/recall@1", "new/recall@1"} <= set(run.metrics["before"]) and np.isfinite(selection["guard_floor"])


def test_test_data_is_scored_before_and_after_but_never_chooses(small_data, eval_data, tmp_path):
    common = dict(pretrained=False, freeze=True, output_dim=8, epochs=2, batch_size=16, cache_dir=tmp_path)
    without = finetuner.fit("test_cnn", small_data, **common)
    run = finetuner.fit("test_cnn", small_data, test_data=eval_data, **common)
    assert run.metrics["selection"]["candidates"] == without.metrics["selection"]["candidates"]
    test = run.metrics["test"]
    assert test["after"]["map@r"] == pytest.approx(finetuner.evaluate(run.model, eval_data)["map@r"], abs=1e-4)
    assert set(test["before"]) == set(test["after"]) and test["before"] != test["after"]


def test_epoch_zero_of_the_default_head_retrieves_like_the_frozen_features(small_data, tmp_path):
    """The residual head starts at the PCA of the training features: before any step, validation retrieval is the
    backbone's own (the guard's reference) within a small tolerance."""
    from finetuner.tailor import ResidualProjectionHead

    width = finetuner.build_model("test_cnn", pretrained=False).feature_dim()
    common = dict(pretrained=False, freeze=True, epochs=1, batch_size=16, cache_dir=tmp_path, val_split=0.25,
                  val_class_split=0.3)
    # uncentred and as wide as the features: the start is the identity, so epoch 0 is the frozen features exactly
    head = ResidualProjectionHead(width, width, center=False)
    run = finetuner.fit("test_cnn", small_data, head=head, output_dim=width, **common)
    start, before = run.metrics["selection"]["candidates"][0], run.metrics["before"]
    assert start["epoch"] == 0
    assert start["score"] == pytest.approx(before["seen/map@r"], abs=1e-6)
    assert start["guard"] == pytest.approx(before["new/map@r"], abs=1e-6)
    # the default (centred PCA to a smaller size) starts close to them
    run = finetuner.fit("test_cnn", small_data, output_dim=width // 2, **common)
    start, before = run.metrics["selection"]["candidates"][0], run.metrics["before"]
    assert start["score"] == pytest.approx(before["seen/map@r"], abs=0.15)


def untuned_at(score: float, guard: float):
    """An untuned candidate with fixed metrics; ``installed`` records whether selection returned it."""
    from finetuner.training.selection import UntunedCandidate

    installed = []
    metrics = {"seen/map@r": score, "new/map@r": guard}
    return UntunedCandidate("its own features", metrics, lambda: installed.append(1)), installed


def test_the_untuned_backbone_is_returned_when_every_candidate_fails_the_guard():
    # a random head's start is not the backbone: neither it, the epochs nor their mixes keep the new classes
    trainer = fake_trainer(0.0, guard_of=lambda w: 0.5)
    untuned, installed = untuned_at(0.4, 0.9)
    selection = ModelSelection("seen/map@r", "new/map@r", reference={"new/map@r": 0.9}, untuned=untuned)
    run_epochs(selection, trainer, [0.8, 0.9])
    assert installed and selection.summary["untuned"] and selection.summary["epoch"] is None
    assert "lost on new classes" in selection.summary["reason"] and "untuned backbone" in selection.summary["reason"]
    assert selection.result()["candidates"][-1]["untuned"]


def test_the_untuned_backbone_is_returned_when_no_candidate_beats_it():
    trainer = fake_trainer(0.1, guard_of=lambda w: 1.0)
    untuned, installed = untuned_at(0.7, 1.0)
    selection = ModelSelection("seen/map@r", "new/map@r", reference={"new/map@r": 1.0}, untuned=untuned)
    run_epochs(selection, trainer, [0.5, 0.6])  # every epoch passes the guard, none scores above the backbone
    assert installed and selection.summary["untuned"] and "no trained candidate beat" in selection.summary["reason"]


def test_a_candidate_that_beats_the_untuned_backbone_is_kept():
    trainer = fake_trainer(0.1, guard_of=lambda w: 1.0)
    untuned, installed = untuned_at(0.5, 1.0)
    selection = ModelSelection("seen/map@r", "new/map@r", reference={"new/map@r": 1.0}, untuned=untuned)
    run_epochs(selection, trainer, [0.6, 0.4])
    assert not installed and selection.summary["epoch"] == 1 and float(trainer.model.w) == pytest.approx(0.6)


def test_epochs_are_judged_on_validation_when_a_user_callback_evaluates_other_data(small_data, eval_data, tmp_path):
    """The README's callback example: the user's EvaluationCallback writes eval/ on their own data, with no seen/
    part; every epoch must still be a candidate scored on fit's validation (it used to keep epoch 0 only)."""
    from finetuner.training import EvaluationCallback

    run = finetuner.fit(
        "test_cnn", small_data, pretrained=False, freeze=True, output_dim=8, epochs=2, batch_size=16,
        cache_dir=tmp_path, val_split=0.25, val_class_split=0.3, callbacks=[EvaluationCallback(query_data=eval_data)],
    )
    epochs = [c["epoch"] for c in run.metrics["selection"]["candidates"] if c["epoch"] is not None]
    assert epochs == [0, 1, 2] and "eval/map@r" in run.history[-1]


@pytest.mark.parametrize("head", ["projection", "linear"])
def test_a_head_that_only_loses_returns_the_untuned_backbone_reduced_by_pca(small_data, tmp_path, head):
    """A random head of another width than the features, trained at a rate that wrecks it: fit returns the
    backbone's features PCA-reduced to output_dim (a LinearHead), never something worse than that, and says so."""
    from finetuner.tailor import LinearHead

    run = finetuner.fit(
        "test_cnn", small_data, pretrained=False, freeze=True, output_dim=4, head=head, epochs=2, batch_size=16,
        learning_rate=50.0, grad_clip=None, cache_dir=tmp_path, val_split=0.25, val_class_split=0.3,
    )
    selection = run.metrics["selection"]
    untuned = next(c for c in selection["candidates"] if c.get("untuned"))
    assert selection["untuned"] and "untuned backbone" in selection["reason"]
    assert isinstance(run.model.head, LinearHead) and run.model.embedding_dim() == 4
    # the returned model is what the untuned candidate was scored as
    assert run.metrics["after"]["seen/map@r"] == pytest.approx(untuned["score"], abs=1e-6)
    assert run.metrics["after"]["new/map@r"] == pytest.approx(untuned["guard"], abs=1e-6)


def test_refit_trains_the_chosen_epochs_again_on_training_and_validation_items(easy_data, eval_data, tmp_path):
    common = dict(
        pretrained=False, freeze=True, output_dim=8, head="linear", epochs=3, batch_size=16, learning_rate=1e-2,
        cache_dir=tmp_path, val_split=0.25, val_class_split=0.3, guard_tolerance=None, test_data=eval_data,
    )
    validated = finetuner.fit("test_cnn", easy_data, refit=False, **common)
    refit = finetuner.fit("test_cnn", easy_data, **common)  # refit=True is the default
    kept = validated.metrics["selection"]["epoch"]
    assert kept and "refit" not in validated.metrics["selection"]
    assert refit.metrics["selection"]["refit"] == {"epochs": kept, "alpha": 1.0, "items": len(easy_data)}
    # the validation figures are the validated model's; the test scores the model returned
    assert refit.metrics["after"] == validated.metrics["after"]
    assert refit.metrics["test"]["after"]["map@r"] == pytest.approx(
        finetuner.evaluate(refit.model, eval_data)["map@r"], abs=1e-4
    )
    assert not torch.equal(refit.model.head.linear.weight, validated.model.head.linear.weight)


def test_refit_must_be_a_bool():
    with pytest.raises(ValueError, match="refit must be true or false"):
        finetuner.config.EvalConfig(refit="yes")


def test_also_guard_refuses_an_epoch_that_keeps_map_at_r_but_loses_recall_at_1():
    model = Scalar(0.0)

    def evaluate():
        w = model.w.item()
        return {"seen/map@r": w, "new/map@r": 1.0, "new/recall@1": 1.0 if w < 0.7 else 0.5}

    trainer = SimpleNamespace(model=model, history=[], epoch=0, evaluate=evaluate)
    reference = {"new/map@r": 1.0, "new/recall@1": 1.0}
    selection = ModelSelection(
        "seen/map@r", "new/map@r", reference=reference, tolerance=0.01, also_guard=("new/recall@1",)
    )
    run_epochs(selection, trainer, [0.3, 0.6, 0.9])
    assert selection.summary["epoch"] == 2 and "new/recall@1 >= 0.9900" in selection.summary["reason"]
    alone = ModelSelection("seen/map@r", "new/map@r", reference=reference, tolerance=0.01)
    run_epochs(alone, fake_trainer(0.0, guard_of=lambda w: 1.0), [0.3, 0.6, 0.9])
    assert alone.summary["epoch"] == 3

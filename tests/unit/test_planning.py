"""How `auto` plans the kinds (measured cost, the room the best score leaves, the budget)
and how `ensemble` combines them: selection on fake kinds with known costs and scores."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from training_job import kinds
from training_job.candidates import Candidate, not_worth, select_model
from training_job.config import Hyperparameters
from training_job.data import Document
from training_job.kinds import ensemble
from training_job.kinds.base import (
    Fitted,
    HeldOut,
    KindTrainer,
    ModelKind,
    SelectionData,
    macro_f1,
)
from training_job.serving import ClassifierConfig, TextClassifier, load_classifier
from training_job.split import Split

LABELS = ["a", "b"]


def _docs(count: int, tag: str) -> list[Document]:
    return [Document(f"{tag}/{i}", LABELS[i % 2], f"{tag} {i}", 1, "0", "utf-8")
            for i in range(count)]  # fmt: skip


# Validation (rows 60-99 of train + validation) is large enough to score on, as in a job
# with a test split.
SPLIT = Split(_docs(60, "train"), _docs(40, "val"), _docs(10, "test"))


class TableClassifier(TextClassifier):
    """Fixed logits per text (what a fitted kind would answer)."""

    def __init__(self, table: dict[str, list[float]], config: ClassifierConfig) -> None:
        self.table = table
        self.config = config

    def logits(self, texts: list[str]) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=float)

    def size_bytes(self) -> int:
        return 1

    def requirements(self) -> frozenset[str]:
        return frozenset()

    def save(self, folder: Path) -> None:
        import json

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "table.json").write_text(json.dumps(self.table))
        self.config.write(folder)


def _config(kind: str) -> ClassifierConfig:
    return ClassifierConfig(dict(enumerate(LABELS)), 128, 32, 2, kind=kind)


def _confident(rows: list[int], wrong: set[int], data: SelectionData) -> np.ndarray:
    """Logits that are right on `rows` but for `wrong`, confidently either way."""
    truth = data.truth
    logits = np.zeros((len(rows), 2))
    for i, row in enumerate(rows):
        right = int(truth[row])
        logits[i, 1 - right if row in wrong else right] = 2.0 if row in wrong else 3.0
    return logits


@dataclass
class Script:
    """What a fake kind costs and which validation rows it gets wrong."""

    cost: float
    wrong: set[int]
    underrated: bool = False  # underrated_by_folds


@dataclass(frozen=True)
class NoOptions:
    pass


class FakeKind(ModelKind):
    options = NoOptions
    scripts: ClassVar[dict[str, Script]] = {}
    fitted: ClassVar[list[str]] = []

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]
        self.summary = name  # type: ignore[misc]

    @property
    def underrated_by_folds(self) -> bool:  # type: ignore[override]
        return FakeKind.scripts[self.name].underrated

    def option_values(self, hp: Hyperparameters) -> dict[str, Any]:
        return {}

    def trainer(self, data: SelectionData) -> KindTrainer:
        kind = self

        class Trainer(KindTrainer):
            def measure_cost(self) -> float:
                return FakeKind.scripts[kind.name].cost

            def fit(self, hp: Hyperparameters) -> Fitted:
                FakeKind.fitted.append(kind.name)
                # scored by folds, every row is held out once
                rows = data.train_rows + data.val_rows if data.cross_validated else data.val_rows
                logits = _confident(rows, FakeKind.scripts[kind.name].wrong, data)
                table = {data.docs[r].text: list(logits[i]) for i, r in enumerate(rows)}
                f1 = macro_f1(data.truth[rows], logits)
                return Fitted(TableClassifier(table, _config(kind.name)), f1, {},
                              HeldOut(rows, logits))  # fmt: skip

        return Trainer()

    def load(self, folder: Path, config: ClassifierConfig) -> TextClassifier:
        import json

        return TableClassifier(json.loads((folder / "table.json").read_text()), config)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Script]:
    """Three fake kinds, cheapest-named first, and the real ensemble after them."""
    fakes = [FakeKind("cheap"), FakeKind("middle"), FakeKind("costly")]
    registry = (*fakes, ensemble.KIND)
    monkeypatch.setattr(kinds, "REGISTRY", registry)
    monkeypatch.setattr(kinds, "NAMES", tuple(k.name for k in registry))
    monkeypatch.setattr(kinds, "MODES", ("auto", *kinds.NAMES))
    FakeKind.fitted = []
    FakeKind.scripts = {}
    return FakeKind.scripts


# Validation too small to decide (rows 0-19 of train + validation): scored by folds.
SMALL = Split(_docs(16, "train"), _docs(4, "val"), _docs(4, "test"))


def _select(split: Split = SPLIT, **hp: Any) -> Any:
    params = Hyperparameters(labels=LABELS, **hp)
    return select_model(params, LABELS, split, lambda e, m: None, time.monotonic())


def _leader(f1: float, per_label: int | None = None) -> Candidate:
    """The best candidate so far, scored on `per_label` documents of each label if given."""
    held_out = None if per_label is None else HeldOut(list(range(2 * per_label)), np.zeros(0))
    return Candidate(None, f1, held_out=held_out, kind="tfidf")  # type: ignore[arg-type]


def _truth(per_label: int) -> np.ndarray:
    return np.array([0, 1] * per_label)


def test_a_costly_kind_is_fitted_only_where_the_room_left_pays_for_its_minutes() -> None:
    many = _truth(500)
    # five minutes for at most two points: not at one point a minute
    assert "at most 2.0 points" in str(not_worth(300, _leader(0.98), 1.0, many))
    assert not_worth(90, _leader(0.98), 1.0, many) is None  # a minute and a half: worth trying
    assert not_worth(300, _leader(0.98), 0.0, many) is None  # 0: every kind is tried
    assert not_worth(20, _leader(1.0), 1.0, many) is None  # cheap kinds are always tried
    assert "at most 0.0 points" in str(not_worth(60, _leader(1.0), 1.0, many))


def test_a_perfect_score_on_a_few_documents_leaves_one_document_of_room() -> None:
    # 8 documents a label, all right: one wrong would cost about 100 / (2 x 8) = 6.2 points
    few = _leader(1.0, per_label=8)
    assert not_worth(360, few, 1.0, _truth(8)) is None  # six minutes for up to 6.2 points
    assert "at most 6.2 points" in str(not_worth(400, few, 1.0, _truth(8)))
    # on 100 a label one document is half a point: a minute is not worth it
    assert "at most 0.5 points" in str(not_worth(60, _leader(1.0, per_label=100), 1.0,
                                                 _truth(100)))  # fmt: skip


def test_the_room_includes_what_a_score_on_few_documents_cannot_rule_out() -> None:
    # given: a leader right on 90% of its documents, on 16 a label and on 500 a label
    def leader(per_label: int) -> Candidate:
        truth = _truth(per_label)
        answers = truth.copy()
        answers[: len(truth) // 10] = 1 - answers[: len(truth) // 10]
        logits = np.eye(2)[answers]
        held_out = HeldOut(list(range(len(truth))), logits)
        return Candidate(None, macro_f1(truth, logits), held_out=held_out, kind="tfidf")  # type: ignore[arg-type]

    few, many = leader(16), leader(500)
    assert few.selection_f1 == pytest.approx(many.selection_f1, abs=0.01)
    # then: scored by folds, 10 points of room on 1,000 documents (and about one more for
    # the noise), but on 32 documents the same score could be 10 points lower: 15 minutes
    # are worth it
    assert "at most 11." in str(not_worth(15 * 60, many, 1.0, _truth(500), fold_scored=True))
    assert not_worth(15 * 60, few, 1.0, _truth(16), fold_scored=True) is None
    assert "points" in str(not_worth(40 * 60, few, 1.0, _truth(16), fold_scored=True))
    # and: scored on a validation split by the models served, the room is what it leaves
    assert "at most 9.4 points" in str(not_worth(15 * 60, few, 1.0, _truth(16)))
    assert "at most 10.0 points" in str(not_worth(15 * 60, many, 1.0, _truth(500)))


def test_auto_fits_the_cheapest_kinds_first_and_drops_one_that_cannot_pay_for_itself(
    registry: dict[str, Script],
) -> None:
    # given: by measured cost, "costly" is cheaper than "middle"; "middle" takes 20 minutes
    # for what can be at most 5 points (0.95 on 40 validation documents)
    registry.update(
        cheap=Script(0.0, set(range(60, 66))),
        middle=Script(1200.0, set(range(60, 65))),
        costly=Script(5.0, {60, 61}),
    )
    # when
    selection = _select()
    # then: fitted by measured cost; "middle" said why not
    assert FakeKind.fitted == ["cheap", "costly"]
    room = re.search(
        r"at most ([0-9.]+) points of macro-F1 over costly", selection.skipped["middle"]
    )
    assert room is not None and float(room.group(1)) == 5.0
    assert selection.estimates["middle"] == 1200.0
    # and: every kind is fitted when told to try them all
    FakeKind.fitted = []
    _select(min_gain_per_minute=0)
    assert FakeKind.fitted == ["cheap", "costly", "middle"]


def test_the_budget_skips_a_kind_that_would_overrun_it_but_never_the_cheapest(
    registry: dict[str, Script],
) -> None:
    registry.update(cheap=Script(3.0, {60}), middle=Script(50.0, {61}), costly=Script(90.0, {62}))
    hp = Hyperparameters(labels=LABELS, time_budget_seconds=60, min_gain_per_minute=0)
    selection = select_model(hp, LABELS, SPLIT, lambda e, m: None, time.monotonic())
    assert FakeKind.fitted == ["cheap", "middle"]
    assert "time budget" in selection.skipped["costly"]
    # and: with the budget spent before selection starts, the cheapest kind still runs
    FakeKind.fitted = []
    selection = select_model(hp, LABELS, SPLIT, lambda e, m: None, time.monotonic() - 100)
    assert FakeKind.fitted == ["cheap"]


def test_an_ensemble_wins_only_where_averaging_clearly_beats_its_best_member(
    registry: dict[str, Script], tmp_path: Path
) -> None:
    # given: three kinds wrong on different validation documents, none better than 0.9
    registry.update(
        cheap=Script(0.0, set(range(60, 64))),
        middle=Script(1.0, set(range(70, 74))),
        costly=Script(2.0, set(range(80, 84))),
    )
    # when
    selection = _select(min_gain_per_minute=0)
    # then: the average of calibrated probabilities fixes what each gets wrong alone, and
    # what it gains beyond two standard errors is added to the best member's score
    winner = selection.winner
    assert winner.kind == "ensemble"
    assert winner.details["members"] >= 2
    assert winner.details["gain_over_best_member"] == pytest.approx(0.1)
    error = winner.details["gain_standard_error"]
    assert 0 < 2 * error < 0.1
    assert winner.selection_f1 == pytest.approx(0.9 + 0.1 - 2 * error)
    # and: it saves and loads as one classifier that answers like the members' average
    winner.classifier.save(tmp_path / "model")
    loaded = load_classifier(tmp_path / "model")
    texts = [d.text for d in SPLIT.validation]
    assert np.allclose(loaded.probabilities(texts), winner.classifier.probabilities(texts))
    assert [p.label for p in loaded.predict(texts)] == [d.label for d in SPLIT.validation]


@pytest.mark.parametrize(
    ("wrong", "gains"),
    [
        # kinds wrong on the same documents: averaging cannot help
        ([{60, 61, 62, 63}] * 3, False),
        # each wrong on one document of its own: averaging fixes one of 40, within the noise
        ([{60, 61, 62, 63}, {60, 61, 62, 64}, {60, 61, 62, 65}], True),
    ],
)
def test_a_member_wins_where_averaging_gains_nothing_beyond_the_noise(
    registry: dict[str, Script], wrong: list[set[int]], gains: bool
) -> None:
    for cost, (name, rows) in enumerate(zip(("cheap", "middle", "costly"), wrong, strict=True)):
        registry[name] = Script(float(cost), rows)
    selection = _select(min_gain_per_minute=0)
    # a tie on the selection measure: the cheaper model to serve wins
    assert selection.winner.kind == "cheap"
    ensemble_fit = next(c for c in selection.candidates if c.kind == "ensemble")
    gain = ensemble_fit.details["gain_over_best_member"]
    assert (gain > 0) is gains
    assert gain <= 2 * ensemble_fit.details["gain_standard_error"]
    assert ensemble_fit.selection_f1 == pytest.approx(selection.winner.selection_f1)


def test_an_ensemble_asked_for_fits_its_members_first_and_fails_clearly_without_two(
    registry: dict[str, Script],
) -> None:
    registry.update(cheap=Script(0.0, {60}), middle=Script(1.0, {70}), costly=Script(2.0, {80}))
    assert _select(mode="ensemble").winner.kind == "ensemble"
    assert FakeKind.fitted == ["cheap", "middle", "costly"]
    with pytest.raises(ValueError, match="at least two fitted kinds"):
        ensemble.KIND.trainer(SelectionData(Hyperparameters(), LABELS, SPLIT,
                                            lambda e, m: None)).fit(Hyperparameters())  # fmt: skip


@pytest.mark.parametrize(
    ("wrong", "kept"),
    [
        # the underrated kind is one document behind on 20: within the noise, it is kept
        ({2, 3}, "costly"),
        # seven documents behind: beaten clearly
        (set(range(2, 10)), "cheap"),
        # wrong on the same document: a tie, and the folds underrate it
        ({2}, "costly"),
    ],
)
def test_scored_by_folds_an_underrated_kind_is_kept_unless_clearly_beaten(
    registry: dict[str, Script], wrong: set[int], kept: str
) -> None:
    registry.update(cheap=Script(0.0, {2}), middle=Script(1.0, {*range(10), *range(60, 70)}),
                    costly=Script(2.0, wrong, underrated=True))  # fmt: skip
    # when
    selection = _select(SMALL, min_gain_per_minute=0)
    # then
    best = max(selection.candidates, key=lambda c: c.selection_f1)
    assert best.kind == "cheap"
    assert selection.winner.kind == kept
    assert "out of fold on 20 documents" in selection.reason
    assert ("within the noise" in selection.reason) is (kept == "costly")
    # and: judged on a validation split, by the models served, one document decides
    registry.update(cheap=Script(0.0, {61}), costly=Script(2.0, {61, 62}, underrated=True))
    selection = _select(min_gain_per_minute=0)
    assert selection.winner.kind == "cheap"
    assert selection.reason.startswith("the best selection macro-F1")


def test_scored_by_folds_an_underrated_kind_is_held_to_the_budget_not_the_rate(
    registry: dict[str, Script],
) -> None:
    # given: the cheapest kind right on all 20 documents, two kinds estimated at an hour
    registry.update(cheap=Script(0.0, set()), middle=Script(3600.0, set()),
                    costly=Script(3600.0, set(), underrated=True))  # fmt: skip
    # when: at the default rate, one point a minute
    selection = _select(SMALL)
    # then: the fold scores bound the room, not what the underrated kind adds: it is fitted
    assert FakeKind.fitted == ["cheap", "costly"]
    assert "min_gain_per_minute" in selection.skipped["middle"]
    # and: a time budget still bounds it
    FakeKind.fitted = []
    selection = _select(SMALL, time_budget_seconds=600)
    assert FakeKind.fitted == ["cheap"]
    assert "time budget" in selection.skipped["costly"]
    # and: judged on a validation split (the models served), the rate applies to it too
    FakeKind.fitted = []
    selection = _select()
    assert FakeKind.fitted == ["cheap"]
    assert "min_gain_per_minute" in selection.skipped["costly"]


def test_an_underrated_kind_is_not_kept_where_only_its_estimate_would_refuse_the_run(
    registry: dict[str, Script],
) -> None:
    # given: on 20 documents the best kind is wrong on 6, the underrated one on 8: within
    # the noise, but 12 of 20 right does not clearly beat always answering one label
    registry.update(cheap=Script(0.0, set(range(0, 12, 2))), middle=Script(1.0, set(range(20))),
                    costly=Script(2.0, set(range(0, 16, 2)), underrated=True))  # fmt: skip
    # when
    selection = _select(SMALL, min_gain_per_minute=0)
    # then: the kind whose estimate would register is kept, and the run says why
    assert selection.winner.kind == "cheap"
    assert "does not clearly beat the majority class" in selection.reason
    # and: where the best kind's estimate would be refused too, the underrated one is kept
    registry.update(cheap=Script(0.0, set(range(0, 16, 2))))
    assert _select(SMALL, min_gain_per_minute=0).winner.kind == "costly"

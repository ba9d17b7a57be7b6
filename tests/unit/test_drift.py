"""Drift of live traffic against a model's training data (functions/core/drift.py), on
in-memory ports."""

from __future__ import annotations

import json
import math
import random
import time

import pytest

from functions.core.drift import (
    HOUR,
    DriftMonitor,
    TrafficLog,
    TrafficWindow,
    drift_report,
    histogram_auc,
)
from functions.core.errors import InvalidRequest
from functions.core.models import Prediction
from functions.core.tags import TAG_SCOPE
from tests.unit.fakes import FakeStore, FakeTracking

# Held-out training documents scored evenly over [0, 1]; labels half and half.
REFERENCE = {"method": "distance+unsureness", "threshold": 0.95, "reference": [0.05] * 20,
             "label_shares": {"sports": 0.5, "weather": 0.5}}  # fmt: skip


def scored_run(tracking: FakeTracking) -> str:
    run = tracking.create_run(tracking.create_experiment("e"), "r", {}, {})
    tracking.set_tags(run.run_id, {TAG_SCOPE: json.dumps(REFERENCE)})
    return run.run_id


def traffic(n: int, low: float, high: float, label: str = "sports") -> list[Prediction]:
    chance = random.Random(f"{n}{low}{high}")
    scores = [chance.uniform(low, high) for _ in range(n)]
    return [Prediction(label, 0, 0.9, ood_score=s, out_of_scope=s > 0.95) for s in scores]


def monitor(store: FakeStore) -> DriftMonitor:
    return DriftMonitor(TrafficLog(store, "artifacts", "_traffic/"), window=50, flush_seconds=0)


def test_traffic_like_the_training_data_is_not_drift() -> None:
    tracking, store = FakeTracking(), FakeStore()
    run_id = scored_run(tracking)
    live = monitor(store)
    live.observe(run_id, traffic(100, 0.0, 1.0)[:50] + traffic(100, 0.0, 1.0, "weather")[50:])
    report = drift_report(tracking, live.log, run_id, hours=24)
    assert report.overall is not None and report.overall.predictions == 100
    assert 0.4 < report.overall.drift_auc < 0.6
    assert report.overall.label_shift < 0.1
    assert not report.drifted and "looks like the training data" in report.verdict


def test_traffic_far_from_the_training_data_is_drift_and_counted_from_every_process() -> None:
    tracking, store = FakeTracking(), FakeStore()
    run_id = scored_run(tracking)
    first, second = monitor(store), monitor(store)  # two API processes, one bucket
    first.observe(run_id, traffic(20, 0.9, 1.0))
    second.observe(run_id, traffic(30, 0.85, 1.0))
    report = drift_report(tracking, first.log, run_id, hours=1)
    assert report.overall is not None and report.overall.predictions == 50
    assert report.overall.drift_auc > 0.85
    assert report.overall.out_of_scope_share > 0.2  # against about 0.05
    assert report.overall.label_shift == pytest.approx(0.5)  # all sports, trained half-half
    assert report.drifted and "moved away" in report.verdict
    assert [p.predictions for p in report.hours] == [50]  # one hour, both processes merged


def test_many_more_texts_out_of_scope_than_expected_is_drift_too() -> None:
    tracking, store = FakeTracking(), FakeStore()
    run_id = scored_run(tracking)
    live = monitor(store)
    # scores spread as in training, but a fifth of the texts past the threshold
    mixed = traffic(80, 0.0, 0.9) + traffic(20, 0.96, 1.0)
    live.observe(run_id, mixed[:50] + [replace_label(p, "weather") for p in mixed[50:]])
    report = drift_report(tracking, live.log, run_id, hours=24)
    assert report.overall is not None and report.overall.drift_auc < 0.7
    assert report.drifted and "more texts than expected" in report.verdict


def replace_label(prediction: Prediction, label: str) -> Prediction:
    return Prediction(label, 1, prediction.score, ood_score=prediction.ood_score,
                      out_of_scope=prediction.out_of_scope)  # fmt: skip


def test_a_few_predictions_are_not_judged() -> None:
    tracking, store = FakeTracking(), FakeStore()
    run_id = scored_run(tracking)
    live = monitor(store)
    live.observe(run_id, traffic(5, 0.99, 1.0))
    report = drift_report(tracking, live.log, run_id, hours=24)
    assert not report.drifted and "too few" in report.verdict


def test_the_gauge_reads_the_last_window_of_predictions() -> None:
    store = FakeStore()
    live = monitor(store)  # window of 50
    live.observe("r1", traffic(50, 0.99, 1.0))  # all out of scope
    live.observe("r1", traffic(40, 0.0, 0.5))  # then 40 in scope
    assert live.out_of_scope_shares() == {"r1": pytest.approx(10 / 50)}
    live.observe("old", [Prediction("a", 0, 0.9)])  # a model without a scope: not counted
    assert "old" not in live.out_of_scope_shares()


def test_a_run_without_a_training_summary_says_so() -> None:
    tracking, store = FakeTracking(), FakeStore()
    run = tracking.create_run(tracking.create_experiment("e"), "r", {}, {})
    with pytest.raises(InvalidRequest, match="retrain to measure drift"):
        drift_report(tracking, monitor(store).log, run.run_id, hours=24)
    with pytest.raises(InvalidRequest, match="hours"):
        drift_report(tracking, monitor(store).log, run.run_id, hours=0)


def test_histogram_auc() -> None:
    even = [0.05] * 20
    assert histogram_auc(even, even) == pytest.approx(0.5)
    assert histogram_auc([0.0] * 19 + [1.0], [1.0] + [0.0] * 19) == pytest.approx(1.0)
    assert histogram_auc([1.0] + [0.0] * 19, [0.0] * 19 + [1.0]) == pytest.approx(0.0)


def test_old_hours_are_left_out_of_the_period_and_unusable_scores_are_not_counted() -> None:
    tracking, store = FakeTracking(), FakeStore()
    run_id = scored_run(tracking)
    live = monitor(store)
    old = TrafficWindow(run_id, (int(time.time()) // HOUR - 48) * HOUR)
    for prediction in traffic(40, 0.99, 1.0):
        old.add(prediction)
    live.log.append([old])  # two days ago: outside a 24-hour report
    unusable = Prediction("sports", 0, 0.9, ood_score=math.nan)
    live.observe(run_id, [*traffic(40, 0.0, 1.0), unusable])
    report = drift_report(tracking, live.log, run_id, hours=24)
    assert report.overall is not None and report.overall.predictions == 40
    assert drift_report(tracking, live.log, run_id, hours=72).overall.predictions == 80  # type: ignore[union-attr]


def test_a_multi_label_answer_counts_each_of_its_labels() -> None:
    window = TrafficWindow("r", 0)
    window.add(Prediction("sports", 0, 0.9, labels=["sports", "weather"], ood_score=0.5,
                          out_of_scope=False))  # fmt: skip
    window.add(Prediction("sports", 0, 0.9, labels=[], ood_score=0.5, out_of_scope=False))
    assert window.predictions == 2 and window.labels == {"sports": 1, "weather": 1}

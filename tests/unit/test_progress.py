"""The job's progress: percent and ETA from the measured plan, written as tags + metrics."""

from __future__ import annotations

from training_job.progress import ETA, MIN_INTERVAL, PERCENT, TAG_PHASE, TAG_PHASE_DETAIL, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _progress() -> tuple[Progress, Clock, list[tuple[dict[str, str], dict[str, float]]]]:
    clock = Clock()
    written: list[tuple[dict[str, str], dict[str, float]]] = []
    return Progress(lambda tags, metrics: written.append((tags, metrics)), clock), clock, written


def test_percent_and_eta_follow_the_timed_plan_and_never_go_back() -> None:
    progress, clock, written = _progress()
    progress.phase("reading")
    assert written[-1] == ({TAG_PHASE: "reading", TAG_PHASE_DETAIL: ""}, {})  # nothing timed
    clock.now += 10
    progress.phase("training")
    progress.plan({"tfidf": 10.0, "head": 30.0})  # 40 s of fits left, + 20% tail
    tags, metrics = written[-1]
    assert metrics[ETA] == 40 + 0.2 * (10 + 40)
    first = metrics[PERCENT]
    assert 0 < first < 50
    progress.fitting("tfidf", "candidate 1 of 2: tfidf")
    clock.now += 25  # runs over its estimate: counted as done, not negative
    progress.step("fold 3 of 5")
    tags, metrics = written[-1]
    assert tags[TAG_PHASE_DETAIL] == "candidate 1 of 2: tfidf · fold 3 of 5"
    assert metrics[ETA] == 30 + 0.2 * (35 + 30)
    progress.fitted("tfidf")
    progress.skipped("head")  # `auto` decides it cannot pay off: the plan shrinks
    progress.phase("exporting")
    tags, metrics = written[-1]
    assert metrics[ETA] == 0.2 * 35
    percents = [m[PERCENT] for _, m in written if PERCENT in m]
    assert percents == sorted(percents) and percents[-1] < 100
    progress.phase("done")
    assert written[-1][1] == {PERCENT: 100.0, ETA: 0.0}


def test_a_plan_that_grows_stretches_the_eta_not_the_percent_backwards() -> None:
    progress, clock, written = _progress()
    progress.plan({"finetune": 10.0})
    progress.fitting("finetune", "candidate 1 of 1: finetune")
    clock.now += 8
    progress.step("epoch 1")
    before = written[-1][1][PERCENT]
    progress.fitted("finetune")
    progress.plan({f"trial {n}": 10.0 for n in range(1, 6)})  # HPO: 50 s more
    after = written[-1][1]
    assert after[PERCENT] == before
    assert after[ETA] > 50


def test_steps_are_written_at_most_every_interval_and_phases_always() -> None:
    progress, clock, written = _progress()
    progress.plan({"finetune": 100.0})
    progress.fitting("finetune", "candidate 1 of 1: finetune")
    count = len(written)
    for epoch in range(1, 6):
        clock.now += MIN_INTERVAL / 4
        progress.step(f"epoch {epoch}")
    assert len(written) - count == 1  # epoch 4 (2 s after the last write), not 1-3 or 5
    progress.phase("evaluating")
    assert written[-1][0][TAG_PHASE] == "evaluating"

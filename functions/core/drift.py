"""Drift: how the texts a model is asked about compare with what it was trained on.

Each prediction of a model that keeps a scope carries an `ood_score` (0-1; about 0.5 for a
typical training document) and `out_of_scope`. The API process sums them per run and hour
(`TrafficWindow`: counts, a histogram of scores, predicted labels) and writes the sums to
the artifacts bucket every `drift_flush_seconds`, one small object a process and flush, so
any process can report on any run. The report compares each hour with the run's reference,
logged by the job (TAG_SCOPE: the score histogram of held-out training documents, the
threshold and each label's share of the training documents):

- drift AUC: the chance that a live text scores further out than a held-out training one
  (0.5: the same distribution; 1: every live text further out), from the two histograms;
- the share of live texts out of scope (about 5 % where nothing moved);
- label shift: the total variation distance between predicted and training label shares.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, fields

from functions.core.errors import InvalidRequest
from functions.core.models import Prediction
from functions.core.ports import ObjectStore, Tracking
from functions.core.tags import TAG_SCOPE

log = logging.getLogger(__name__)

# As training_job/scope.py: REFERENCE_BINS and 1 - IN_SCOPE_QUANTILE (a test compares them).
REFERENCE_BINS = 20
EXPECTED_OUT_OF_SCOPE = 0.05
HOUR = 3600
# The verdict: at least this many predictions, and a drift AUC at least this far from 0.5
# (about four standard errors at that count), or this many times the expected share out of
# scope (at 30 predictions, 5 or more flagged where 1.5 are expected).
DRIFT_MIN_PREDICTIONS = 30
DRIFT_AUC = 0.7
DRIFT_OUT_OF_SCOPE_TIMES = 3.0
MAX_REPORT_HOURS = 24 * 31
# Runs whose recent predictions a process keeps for the gauge (the least recently asked go).
MAX_WATCHED_RUNS = 100


@dataclass
class TrafficWindow:
    """A run's predictions in one hour, summed (windows of one hour add up)."""

    run_id: str
    hour: int  # epoch seconds at the start of the hour
    predictions: int = 0
    out_of_scope: int = 0
    ood_sum: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * REFERENCE_BINS)
    labels: dict[str, int] = field(default_factory=dict)

    def add(self, prediction: Prediction) -> None:
        score = prediction.ood_score
        if score is None or not math.isfinite(score):
            return
        self.predictions += 1
        self.out_of_scope += bool(prediction.out_of_scope)
        self.ood_sum += score
        self.histogram[min(max(int(score * REFERENCE_BINS), 0), REFERENCE_BINS - 1)] += 1
        # multi-label: every label answered (shares of answers, as the job's label_shares)
        for label in prediction.labels if prediction.labels is not None else [prediction.label]:
            self.labels[label] = self.labels.get(label, 0) + 1

    def merge(self, other: TrafficWindow) -> None:
        self.predictions += other.predictions
        self.out_of_scope += other.out_of_scope
        self.ood_sum += other.ood_sum
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        for label, count in other.labels.items():
            self.labels[label] = self.labels.get(label, 0) + count


class TrafficLog:
    """Windows of traffic in the artifacts bucket: `<prefix><run_id>/<hour>/<id>.json`."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix

    def append(self, windows: list[TrafficWindow]) -> None:
        for window in windows:
            key = f"{self.prefix}{window.run_id}/{window.hour:011d}/{uuid.uuid4().hex}.json"
            self.store.put_text(self.bucket, key, json.dumps(asdict(window)))

    def read(self, run_id: str, since_hour: int) -> list[TrafficWindow]:
        """The run's windows from `since_hour` on, one per hour (merged across processes)."""
        merged: dict[int, TrafficWindow] = {}
        folder = f"{self.prefix}{run_id}/"
        # Keys sort by hour (zero-padded): the listing starts at the period, not the history.
        start = f"{folder}{since_hour - 1:011d}/~"
        for info in self.store.list_objects(self.bucket, folder, start_after=start):
            hour = int(info.key[len(folder) :].split("/", 1)[0])
            text = self.store.get_text(self.bucket, info.key)
            if text is None or hour < since_hour:
                continue
            known = {f.name for f in fields(TrafficWindow)}  # written by a later version: more
            window = TrafficWindow(**{k: v for k, v in json.loads(text).items() if k in known})
            merged.setdefault(hour, TrafficWindow(run_id, hour)).merge(window)
        return [merged[hour] for hour in sorted(merged)]


class DriftMonitor:
    """One process's view of live traffic: a rolling window of out-of-scope flags per run
    (the /metrics gauge) and the hour's sums waiting to be written."""

    def __init__(self, log: TrafficLog, window: int, flush_seconds: float) -> None:
        self.log = log
        self.window = window
        self.flush_seconds = flush_seconds
        self._recent: dict[str, deque[bool]] = {}
        self._pending: dict[tuple[str, int], TrafficWindow] = {}
        self._flushed_at = time.monotonic()
        self._lock = threading.Lock()

    def observe(self, run_id: str, predictions: list[Prediction]) -> None:
        scored = [p for p in predictions if p.ood_score is not None and math.isfinite(p.ood_score)]
        if not scored:
            return
        hour = int(time.time()) // HOUR * HOUR
        with self._lock:
            recent = self._recent.pop(run_id, None) or deque(maxlen=self.window)
            self._recent[run_id] = recent  # the most recently asked last
            while len(self._recent) > MAX_WATCHED_RUNS:  # the gauge's runs stay bounded
                del self._recent[next(iter(self._recent))]
            pending = self._pending.setdefault((run_id, hour), TrafficWindow(run_id, hour))
            for prediction in scored:
                recent.append(bool(prediction.out_of_scope))
                pending.add(prediction)
            due = time.monotonic() - self._flushed_at >= self.flush_seconds
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            windows, self._pending = list(self._pending.values()), {}
            self._flushed_at = time.monotonic()
        try:
            self.log.append(windows)
        except Exception as exc:  # a store outage must not fail the predictions it counts
            log.warning("traffic sums not written (%d windows dropped): %s", len(windows), exc)

    def out_of_scope_shares(self) -> dict[str, float]:
        """Each run's share of out-of-scope texts among its last `window` predictions."""
        with self._lock:
            return {run: sum(flags) / len(flags) for run, flags in self._recent.items() if flags}


@dataclass(frozen=True)
class TrainingReference:
    """What the job logged of a run's training data (TAG_SCOPE, training_job/job.py)."""

    method: str
    threshold: float
    reference: list[float]  # held-out training documents' shares per ood_score bin
    # Each label's share of the training documents' labels (empty where too many to tag).
    label_shares: dict[str, float]


@dataclass(frozen=True)
class DriftPoint:
    hour: int
    predictions: int
    out_of_scope_share: float
    mean_ood_score: float
    drift_auc: float
    label_shift: float


@dataclass(frozen=True)
class DriftReport:
    run_id: str
    method: str
    threshold: float
    expected_out_of_scope_share: float
    hours: list[DriftPoint]
    overall: DriftPoint | None
    drifted: bool
    verdict: str


def drift_report(tracking: Tracking, log: TrafficLog, run_id: str, hours: int) -> DriftReport:
    """The run's traffic of the last `hours` hours, hour by hour and overall, against its
    training reference; the tracking port is the tenant's (another's run is not found)."""
    if not 1 <= hours <= MAX_REPORT_HOURS:
        raise InvalidRequest(f"hours must be between 1 and {MAX_REPORT_HOURS}")
    run = tracking.get_run(run_id)
    raw = run.tags.get(TAG_SCOPE)
    if raw is None:
        raise InvalidRequest(
            f"run {run_id} keeps no summary of its training data to compare traffic with "
            "(trained before drift was measured, or not finished); retrain to measure drift"
        )
    training = TrainingReference(**json.loads(raw))
    since = (int(time.time()) // HOUR - hours + 1) * HOUR
    windows = log.read(run_id, since)
    points = [point(w, training) for w in windows if w.predictions]
    total = TrafficWindow(run_id, since)
    for window in windows:
        total.merge(window)
    overall = point(total, training) if total.predictions else None
    drifted, verdict = judge_drift(overall)
    return DriftReport(run_id, training.method, training.threshold, EXPECTED_OUT_OF_SCOPE,
                       points, overall, drifted, verdict)  # fmt: skip


def point(window: TrafficWindow, training: TrainingReference) -> DriftPoint:
    n = window.predictions
    live = [count / n for count in window.histogram]
    shares = training.label_shares
    answers = max(sum(window.labels.values()), 1)
    predicted = {label: window.labels.get(label, 0) / answers for label in shares}
    shift = 0.5 * sum(abs(predicted[label] - share) for label, share in shares.items())
    return DriftPoint(window.hour, n, window.out_of_scope / n, window.ood_sum / n,
                      histogram_auc(live, training.reference), shift)  # fmt: skip


def histogram_auc(live: list[float], reference: list[float]) -> float:
    """P(live > reference) + P(tie) / 2 for scores binned alike (shares summing to 1)."""
    below, auc = 0.0, 0.0
    for live_share, reference_share in zip(live, reference, strict=True):
        auc += live_share * (below + reference_share / 2)
        below += reference_share
    return auc


def judge_drift(overall: DriftPoint | None) -> tuple[bool, str]:
    if overall is None:
        return False, "no predictions in this period"
    said = (
        f"{overall.predictions} predictions: drift AUC {overall.drift_auc:.2f}, "
        f"{overall.out_of_scope_share:.0%} out of scope (about "
        f"{EXPECTED_OUT_OF_SCOPE:.0%} expected), label shift {overall.label_shift:.2f}"
    )
    if overall.predictions < DRIFT_MIN_PREDICTIONS:
        return False, f"{said}; too few to judge (at least {DRIFT_MIN_PREDICTIONS})"
    if overall.drift_auc >= DRIFT_AUC:
        return True, f"{said}: traffic has moved away from the training data"
    if overall.out_of_scope_share >= DRIFT_OUT_OF_SCOPE_TIMES * EXPECTED_OUT_OF_SCOPE:
        return True, f"{said}: more texts than expected lie outside what it was trained on"
    return False, f"{said}: traffic looks like the training data"

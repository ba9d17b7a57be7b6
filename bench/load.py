"""Load on the running API (127.0.0.1 only): concurrent predict clients plus a burst of
concurrent training requests, then a check that every training request became exactly one
tracked run that finishes.

Needs the local stack (`make up`) and its demo dataset. Trains a tfidf model on it first
when the `bench-load` experiment has no champion. Each client is a user who sends a request,
reads the answer and waits `--think` seconds (exponentially distributed, mean 1 s) before the
next, so 100 clients offer about 100 requests a second; `--think 0` makes every client send
back to back (a closed loop, where latency is only clients / throughput). Prints, against a
baseline of one client measured in the same run:

    predict p50 ratio <x>      p50 under load / p50 of one sequential client
    predict p95 ratio <x>      p95 under load / p50 of one sequential client
    errors <n>                 non-2xx answers and transport errors (must be 0)
    runs <n> of <n>            training requests that became one run each, all finished

    python bench/load.py [--clients 100] [--seconds 60] [--trainings 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from typing import Any

import httpx

EXPERIMENT = "bench-load"
MODEL = f"models:/{EXPERIMENT}-classifier@champion"
DATASET = "demo-bbc"
LABELS = ["business", "entertainment", "politics", "sports", "tech"]
TEXTS = [
    "The central bank raised interest rates again, and lenders' shares rose.",
    "The striker scored twice as the champions won the cup final.",
    "The new phone has a faster chip and a brighter screen.",
    "The minister resigned after the vote on the budget.",
    "The film won three awards at the festival on Sunday.",
]
API = "/custom_classifier"


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_runs(client: httpx.AsyncClient, run_ids: set[str], timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        params: dict[str, str | int] = {"experiment_name": EXPERIMENT, "limit": 100}
        runs = (await client.get(f"{API}/runid/status", params=params)).json()
        mine = [r for r in runs if r["run_id"] in run_ids]
        if all(r["status"] in {"FINISHED", "FAILED"} for r in mine) and len(mine) >= len(run_ids):
            return list(runs)
        if time.monotonic() > deadline:
            return list(runs)
        await asyncio.sleep(2)


async def train(client: httpx.AsyncClient) -> httpx.Response:
    body = {"labels": LABELS, "path": DATASET, "experiment_name": EXPERIMENT, "mode": "tfidf"}
    return await client.post(f"{API}/process", json=body, timeout=120)


async def ensure_model(client: httpx.AsyncClient) -> None:
    probe = await client.post(f"{API}/predict", json={"runid": MODEL, "text": "x"})
    if probe.status_code == 200:
        return
    started = await train(client)
    started.raise_for_status()
    run_id = started.json()["data"]["info"]["run_id"]
    print(f"training the load-test model (run {run_id})", file=sys.stderr)
    await wait_runs(client, {run_id}, timeout=600)


async def predictor(client: httpx.AsyncClient, until: float, latencies: list[float],
                    errors: Counter[str], index: int, think: float,
                    timeline: list[tuple[float, float]]) -> None:  # fmt: skip
    n = index
    pause = random.Random(index)
    if think:  # users do not arrive in lockstep
        await asyncio.sleep(pause.uniform(0, think))
    while time.monotonic() < until:
        if think and n > index:
            await asyncio.sleep(pause.expovariate(1 / think))
        body = {"runid": MODEL, "text": TEXTS[n % len(TEXTS)]}
        n += 1
        began = time.perf_counter()
        try:
            answer = await client.post(f"{API}/predict", json=body, timeout=60)
            if answer.status_code != 200:
                errors[f"HTTP {answer.status_code}"] += 1
                continue
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
            continue
        latencies.append(time.perf_counter() - began)
        timeline.append((began, latencies[-1]))


async def main(args: argparse.Namespace) -> int:
    limits = httpx.Limits(max_connections=args.clients + args.trainings + 4)
    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=60) as client:
        await ensure_model(client)
        baseline: list[float] = []
        for i in range(args.baseline):
            began = time.perf_counter()
            body = {"runid": MODEL, "text": TEXTS[i % len(TEXTS)]}
            answer = await client.post(f"{API}/predict", json=body)
            answer.raise_for_status()
            baseline.append(time.perf_counter() - began)
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        until = time.monotonic() + args.seconds
        timeline: list[tuple[float, float]] = []
        started_at = time.perf_counter()
        clients = [predictor(client, until, latencies, errors, i, args.think, timeline)
                   for i in range(args.clients)]  # fmt: skip
        trainings = [train(client) for _ in range(args.trainings)]
        outcomes = await asyncio.gather(*clients, *trainings)
        started = [r for r in outcomes[args.clients :] if isinstance(r, httpx.Response)]
        for response in started:
            if response.status_code != 200:
                errors[f"process HTTP {response.status_code}"] += 1
        run_ids = [r.json()["data"]["info"]["run_id"] for r in started if r.status_code == 200]
        runs = await wait_runs(client, set(run_ids), timeout=args.training_timeout)
    seen = Counter(r["run_id"] for r in runs)
    finished = [r for r in runs if r["run_id"] in set(run_ids) and r["status"] == "FINISHED"]
    base = statistics.median(baseline)
    rate = len(latencies) / args.seconds
    print(f"predict requests {len(latencies)} in {args.seconds:.0f} s from {args.clients} "
          f"clients thinking {args.think:g} s ({rate:.1f}/s); one client p50 "
          f"{base * 1000:.1f} ms")  # fmt: skip
    print(f"predict p50 {quantile(latencies, 0.5) * 1000:.1f} ms, "
          f"p95 {quantile(latencies, 0.95) * 1000:.1f} ms, "
          f"p99 {quantile(latencies, 0.99) * 1000:.1f} ms")  # fmt: skip
    windows: dict[int, list[float]] = {}
    for at, latency in timeline:
        windows.setdefault(int((at - started_at) // 10), []).append(latency)
    print("p95 by 10 s window (ms): " + ", ".join(
        f"{quantile(w, 0.95) * 1000:.0f}" for _, w in sorted(windows.items())))  # fmt: skip
    print(f"predict p50 ratio {quantile(latencies, 0.5) / base:.2f}")
    print(f"predict p95 ratio {quantile(latencies, 0.95) / base:.2f}")
    print(f"errors {sum(errors.values())} {dict(errors) if errors else ''}".rstrip())
    duplicated = [run_id for run_id in run_ids if seen[run_id] != 1]
    print(f"runs {len(finished)} of {args.trainings} (tracked once each: {not duplicated}, "
          f"distinct ids: {len(set(run_ids)) == len(run_ids)})")  # fmt: skip
    ok = (not errors and len(finished) == args.trainings and not duplicated
          and len(set(run_ids)) == len(run_ids))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--trainings", type=int, default=10)
    parser.add_argument("--baseline", type=int, default=50)
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="mean seconds a client waits between requests (0: closed loop)",
    )
    parser.add_argument("--training-timeout", type=float, default=900)
    options = parser.parse_args()
    if not options.url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("bench/load.py only loads a local stack (127.0.0.1)")
    sys.exit(asyncio.run(main(options)))

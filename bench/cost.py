"""What the service costs on AWS, priced from this project's measured durations, next to
Amazon Comprehend custom classification for the same work.

Measured figures, each from the bench that measured it on this machine (2 cores):
- training seconds of `auto` by dataset size: bench/results/scale.jsonl (bench/scale.py,
  the latest row per size; short sentences, 3 labels);
- online predict: warm p50 and cold start of the int8 ONNX model through the app
  (bench/predict.py), --predict-ms and --cold-start-seconds;
- batch: documents/s of one shard (bench/batch_shards.py, BBC News articles, `head`
  int8 on 2 cores), --batch-docs-per-second.

How they are priced:
- A training or batch job on SageMaker is billed per instance-second while it runs (not
  while it starts). Durations are this machine's (2 cores, about one ml.m5.xlarge: 4
  vCPUs are 2 physical cores); a larger type is priced at the same duration, an upper
  bound (more cores shorten the CPU-bound phases). GPU types are priced at the CPU
  duration too: not measured here (no GPU was lent), an upper bound again.
- Each batch shard also pays JOB_OVERHEAD_SECONDS (image start, model download and load).
- Online predict is the Lambda `PredictFunction` at the MemorySize in template.yaml,
  billed per ms of duration, plus Lambda's and the HTTP API's per-request prices; warm
  (every call on a warm function) and cold (every call a cold start) bound it.
- Idle: what the deployed stack bills with no traffic (iac/: one NAT gateway, MLflow on
  Fargate 1 vCPU/2 GB behind an internal ALB, RDS db.t4g.small with 20 GB, one secret);
  the functions, the API, SQS and the jobs bill nothing idle.
- Comprehend: training per hour of training time (its duration is not published: the
  minutes below, --comprehend-training-minutes, are the "about 30 minutes" users report),
  $0.50 a month per model, asynchronous inference per unit of 100 characters with a
  3-unit minimum a document, a real-time endpoint per inference unit (100 characters/s)
  per second while it exists.

Prices: AWS's published on-demand list prices, us-east-1, as of this writing; PRICES below
is the one place to change them.

    python bench/cost.py [--chars 1000] [--predict-ms 23.4] [--batch-docs-per-second 69.8]
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCALE = ROOT / "bench" / "results" / "scale.jsonl"
HOURS_A_MONTH = 730

# SageMaker training, $ per instance-hour (on-demand), with vCPUs.
SAGEMAKER = {
    "ml.m5.xlarge": (0.23, 4),
    "ml.m5.2xlarge": (0.461, 8),
    "ml.m5.4xlarge": (0.922, 16),
    "ml.c5.2xlarge": (0.408, 8),
    "ml.c5.4xlarge": (0.816, 16),
    "ml.g5.xlarge": (1.408, 4),
    "ml.g5.2xlarge": (1.515, 8),
    "ml.g6.xlarge": (1.1267, 4),
    "ml.g6.2xlarge": (1.3557, 8),
}
PRICES = {
    "lambda_gb_second": 0.0000166667,  # x86
    "lambda_request": 0.20 / 1e6,
    "http_api_request": 1.00 / 1e6,
    "nat_gateway_hour": 0.045,
    "public_ipv4_hour": 0.005,
    "fargate_vcpu_hour": 0.04048,
    "fargate_gb_hour": 0.004445,
    "alb_hour": 0.0225,
    "alb_lcu_hour": 0.008,
    "rds_t4g_small_hour": 0.032,
    "rds_gp2_gb_month": 0.115,
    "secret_month": 0.40,
    "comprehend_training_hour": 3.00,
    "comprehend_model_month": 0.50,
    "comprehend_async_unit": 0.0005,  # 100 characters, 3 units minimum a document
    "comprehend_endpoint_iu_second": 0.0005,  # 1 inference unit = 100 characters/s
}
JOB_OVERHEAD_SECONDS = 60.0
# bench/predict.py (int8 ONNX, fine-tuned MiniLM through the app: warm p50 of a 256-token
# text, about 1,000 characters of English, and the cold start to the first answer) and
# bench/batch_shards.py (one shard, BBC articles of 2,200 characters on average, head int8).
PREDICT_MS, COLD_START_SECONDS, BATCH_DOCS_PER_SECOND = 23.4, 1.91, 69.8


def lambda_memory_mb(function: str = "PredictFunction") -> int:
    """The function's MemorySize in template.yaml (read as text: SAM's tags are not YAML)."""
    text = (ROOT / "template.yaml").read_text()
    block = text.split(f"\n  {function}:", 1)[1]
    found = re.search(r"MemorySize:\s*(\d+)", block)
    if found is None:
        raise ValueError(f"no MemorySize for {function} in template.yaml")
    return int(found.group(1))


def training_seconds() -> dict[int, tuple[float, str]]:
    """The latest measured `auto` training per dataset size, with the kind it kept."""
    found: dict[int, tuple[float, str]] = {}
    if SCALE.exists():
        for line in SCALE.read_text().splitlines():
            row = json.loads(line)
            if not row["job_args"]:  # the default `auto`
                found[row["documents"]] = (row["seconds"], row["kind"])
    return dict(sorted(found.items()))


def dollars(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 else f"${value:,.4f}"


def units(chars: int) -> int:
    return max(3, math.ceil(chars / 100))


def idle_month() -> dict[str, float]:
    p = PRICES
    return {
        "NAT gateway (1) and its public IPv4": (p["nat_gateway_hour"] + p["public_ipv4_hour"])
        * HOURS_A_MONTH,
        "MLflow on Fargate (1 vCPU, 2 GB)": (p["fargate_vcpu_hour"] + 2 * p["fargate_gb_hour"])
        * HOURS_A_MONTH,
        "internal ALB (1 LCU)": (p["alb_hour"] + p["alb_lcu_hour"]) * HOURS_A_MONTH,
        "RDS db.t4g.small + 20 GB": p["rds_t4g_small_hour"] * HOURS_A_MONTH
        + 20 * p["rds_gp2_gb_month"],
        "Secrets Manager (1 secret)": p["secret_month"],
        "Lambda, HTTP API, SQS, SageMaker jobs": 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=1000, help="characters a document")
    parser.add_argument("--predict-ms", type=float, default=PREDICT_MS)
    parser.add_argument("--cold-start-seconds", type=float, default=COLD_START_SECONDS)
    parser.add_argument("--batch-docs-per-second", type=float, default=BATCH_DOCS_PER_SECOND)
    parser.add_argument("--comprehend-training-minutes", type=float, default=30.0)
    parser.add_argument("--shards", default="1,4,10")
    args = parser.parse_args()
    p = PRICES

    print("## One training (auto), per instance type")
    trainings = training_seconds()
    if not trainings:
        print("no measured training: run bench/scale.py first")
    types = list(SAGEMAKER)
    print("| documents | kept | measured s | " + " | ".join(types) + " | Comprehend |")
    print("|---:|---|---:|" + "---:|" * (len(types) + 1))
    comprehend_training = p["comprehend_training_hour"] * args.comprehend_training_minutes / 60
    for documents, (seconds, kind) in trainings.items():
        cells = [dollars(SAGEMAKER[t][0] * seconds / 3600) for t in types]
        print(f"| {documents:,} | {kind} | {seconds:,.0f} | " + " | ".join(cells)
              + f" | {dollars(comprehend_training)} |")  # fmt: skip
    reference = "ml.m5.xlarge"
    for documents, (seconds, _) in trainings.items():
        ours = SAGEMAKER[reference][0] * seconds / 3600
        print(f"training cost ratio {documents} {reference} vs Comprehend "
              f"{ours / comprehend_training:.3f}")  # fmt: skip

    memory_gb = lambda_memory_mb() / 1024
    per_call = p["lambda_request"] + p["http_api_request"]
    warm = per_call + memory_gb * math.ceil(args.predict_ms) / 1000 * p["lambda_gb_second"]
    cold = warm + memory_gb * args.cold_start_seconds * p["lambda_gb_second"]
    chars_units = units(args.chars)
    print(f"\n## Online predictions ({args.chars:,} characters a document; Lambda "
          f"{lambda_memory_mb()} MB, {args.predict_ms:g} ms warm, {args.cold_start_seconds:g} s "
          "cold start)")  # fmt: skip
    print("| predictions | ours warm | ours all cold | Comprehend endpoint, 1 IU, a day | "
          "Comprehend endpoint, 1 IU, a month | Comprehend async |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    endpoint_second = p["comprehend_endpoint_iu_second"]
    for n in (1_000, 1_000_000):
        asynchronous = n * chars_units * p["comprehend_async_unit"]
        day, month = endpoint_second * 86_400, endpoint_second * 3600 * HOURS_A_MONTH
        print(f"| {n:,} | {dollars(n * warm)} | {dollars(n * cold)} | {dollars(day)} | "
              f"{dollars(month)} | {dollars(asynchronous)} |")  # fmt: skip
    comprehend_million = 1e6 * chars_units * p["comprehend_async_unit"]
    print(f"online cost ratio 1000000 ours warm vs Comprehend async "
          f"{1e6 * warm / comprehend_million:.5f}")  # fmt: skip

    print(f"\n## 1,000,000 batch predictions ({args.batch_docs_per_second:g} documents/s a "
          f"{reference} shard, {JOB_OVERHEAD_SECONDS:.0f} s start a shard)")  # fmt: skip
    print("| shards | wall time h | ours | Comprehend async |")
    print("|---:|---:|---:|---:|")
    compute = 1e6 / args.batch_docs_per_second
    for shards in (int(s) for s in args.shards.split(",")):
        billed = compute + shards * JOB_OVERHEAD_SECONDS
        wall = compute / shards + JOB_OVERHEAD_SECONDS
        ours = SAGEMAKER[reference][0] * billed / 3600
        print(f"| {shards} | {wall / 3600:.2f} | {dollars(ours)} | "
              f"{dollars(comprehend_million)} |")  # fmt: skip
        print(f"batch cost ratio shards={shards} vs Comprehend async "
              f"{ours / comprehend_million:.5f}")  # fmt: skip

    print("\n## Idle, a month")
    print("| item | $ a month |")
    print("|---|---:|")
    idle = idle_month()
    for item, cost in idle.items():
        print(f"| {item} | {dollars(cost)} |")
    total = sum(idle.values())
    print(f"| **stack** | **{dollars(total)}** |")
    print(f"| Comprehend: one model kept | {dollars(p['comprehend_model_month'])} |")
    endpoint_month = endpoint_second * 3600 * HOURS_A_MONTH
    print(f"| Comprehend: one model + a 1-IU real-time endpoint | "
          f"{dollars(p['comprehend_model_month'] + endpoint_month)} |")  # fmt: skip
    print(f"idle cost ratio stack vs Comprehend endpoint {total / endpoint_month:.3f}")


if __name__ == "__main__":
    main()

"""`custom-classifier`: the HTTP API from a shell or a CI pipeline.

Base URL and API key come from --url / --api-key or CC_API_URL / CC_API_KEY. Every command
exits non-zero on failure (1: the API or the job said no; 2: bad usage) and prints JSON
with --json.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

API = "/custom_classifier"
UPLOAD_BATCH = 500
TERMINAL = {"FINISHED", "FAILED", "KILLED"}
PROGRESS_EVERY = 30.0  # seconds between lines of one phase and candidate while waiting
# How many of a batch job's not-treated documents batch-predict prints.
SKIPPED_SHOWN = 10
# Answers worth the same request again (with its Idempotency-Key, nothing is started twice).
RETRYABLE = {502, 503, 504}


class ApiError(click.ClickException):
    exit_code = 1


@dataclass
class Client:
    url: str
    api_key: str
    as_json: bool
    timeout: float = 60.0

    def _http(self) -> httpx.Client:
        headers = {"x-api-key": self.api_key} if self.api_key else {}
        return httpx.Client(base_url=self.url.rstrip("/"), headers=headers, timeout=self.timeout)

    def call(self, method: str, path: str, retries: int = 0, **kwargs: Any) -> Any:
        """One request; `retries` more after a transport error or a 502/503/504."""
        for attempt in range(retries + 1):
            try:
                with self._http() as http:
                    response = http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                if attempt == retries:
                    raise ApiError(f"cannot reach {self.url}: {exc}") from exc
            else:
                if response.status_code not in RETRYABLE or attempt == retries:
                    break
            time.sleep(min(8.0, 0.5 * 2**attempt))
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:500]}
        if response.status_code >= 400:
            message = body.get("error") if isinstance(body, dict) else None
            raise ApiError(f"{response.status_code}: {message or response.reason_phrase}")
        return body

    def show(self, payload: Any, human: str) -> None:
        click.echo(json.dumps(payload, indent=2) if self.as_json else human)


pass_client = click.make_pass_decorator(Client)


@click.group()
@click.option("--url", envvar="CC_API_URL", default="http://127.0.0.1:8000", show_default=True,
              help="the API's base URL (with the stage path behind API Gateway)")  # fmt: skip
@click.option("--api-key", envvar="CC_API_KEY", default="", help="sent as x-api-key")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def main(ctx: click.Context, url: str, api_key: str, as_json: bool) -> None:
    """Train text classifiers on labelled S3 folders and use them."""
    ctx.obj = Client(url, api_key, as_json)


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # S3's ETag of a single-part upload; used to resume, not to secure
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _documents(folder: Path) -> list[tuple[str, Path]]:
    """`<label>/<file>` for every file one level below a label folder."""
    found = []
    for label in sorted(p for p in folder.iterdir() if p.is_dir()):
        found += [(f"{label.name}/{f.name}", f) for f in sorted(label.iterdir()) if f.is_file()]
    return found


def _put(http: httpx.Client, url: str, path: Path, attempts: int = 3) -> str | None:
    for attempt in range(attempts):
        try:
            response = http.put(url, content=path.read_bytes())
            if response.status_code < 300:
                return None
            error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = str(exc)
        time.sleep(0.5 * 2**attempt)
    return error


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dataset")
@click.option("--workers", default=8, show_default=True, help="concurrent uploads")
@pass_client
def upload(client: Client, folder: Path, dataset: str, workers: int) -> None:
    """Upload FOLDER/<label>/<file> to the DATASET; files already there are skipped, so an
    interrupted upload resumes."""
    documents = _documents(folder)
    if not documents:
        raise click.UsageError(f"{folder} has no <label>/<file> documents")
    local = dict(documents)
    uploads, skipped, rejected, failed = [], [], [], []
    for start in range(0, len(documents), UPLOAD_BATCH):
        files = [{"path": name, "size": path.stat().st_size, "md5": _md5(path)}
                 for name, path in documents[start : start + UPLOAD_BATCH]]  # fmt: skip
        plan = client.call("POST", f"{API}/uploads", json={"path": dataset, "files": files})
        uploads += plan["data"]["uploads"]
        skipped += plan["data"]["skipped"]
        rejected += plan["data"]["rejected"]
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with (
        # One pool of kept-alive connections for all the PUTs (a connection each costs more
        # than a small document's upload).
        httpx.Client(timeout=120, limits=limits) as http,
        ThreadPoolExecutor(max_workers=workers) as pool,
        click.progressbar(length=len(uploads), label="uploading", file=sys.stderr) as bar,
    ):
        futures = {pool.submit(_put, http, u["url"], local[u["path"]]): u["path"]
                   for u in uploads}  # fmt: skip
        for future in as_completed(futures):
            error = future.result()
            if error:
                failed.append({"path": futures[future], "error": error})
            bar.update(1)
    summary = {"dataset": dataset, "uploaded": len(uploads) - len(failed),
               "skipped": len(skipped), "rejected": rejected, "failed": failed}  # fmt: skip
    client.show(summary, f"{summary['uploaded']} uploaded, {len(skipped)} already there, "
                f"{len(rejected)} rejected, {len(failed)} failed")  # fmt: skip
    for item in rejected:
        click.echo(f"  rejected {item['path']}: {item['reason']}", err=True)
    if failed:
        raise ApiError(f"{len(failed)} files failed to upload; run the command again to resume")


def _runs(client: Client, experiment: str, limit: int = 3) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = client.call(
        "GET", f"{API}/runid/status", params={"experiment_name": experiment, "limit": limit}
    )
    return runs


def _percent_and_eta(run: dict[str, Any]) -> str:
    """`(42%, about 3 min left)`, or what of it the job could estimate."""
    said = []
    if run.get("progress_percent") is not None:
        said.append(f"{run['progress_percent']:.0f}%")
    if run.get("eta_seconds") is not None:
        eta = run["eta_seconds"]
        said.append(f"about {eta / 60:.0f} min left" if eta >= 90 else f"about {eta:.0f} s left")
    return f"({', '.join(said)})" if said else ""


def _run_line(run: dict[str, Any]) -> str:
    f1 = run.get("metrics.test_macro_f1")
    score = f"macro-F1 {f1:.3f}" if f1 is not None else ""
    registered = "registered" if run.get("registered") else ""
    below = f"not registered: {run['gate_reason']}" if run.get("gate") == "failed" else ""
    reason = run.get("failure_reason") or run.get("cancelled") or below
    queued = f"#{run['queue_position']} in the queue" if run.get("queue_position") else ""
    progress = ""
    if run["status"] == "RUNNING" and run.get("phase"):
        said = " ".join(filter(None, [run.get("phase_detail"), _percent_and_eta(run)]))
        progress = f"{run['phase']}: {said}" if said else run["phase"]
    fields = (run["run_id"], run["status"], queued, progress, score, registered, reason)
    return "  ".join(x for x in fields if x)


def _wait_run(client: Client, experiment: str, run_id: str, every: float) -> dict[str, Any]:
    """The run once it ends; on stderr meanwhile, its line whenever its phase or candidate
    moves on (its steps: every PROGRESS_EVERY seconds), so a long training is not a silent
    wait."""
    shown, shown_at = None, 0.0
    while True:
        for run in _runs(client, experiment, limit=20):
            if run["run_id"] != run_id:
                continue
            if run["status"] in TERMINAL:
                return run
            within = (run.get("phase_detail") or "").split(" · ")[0]  # not the step
            stage = (run["status"], run.get("phase"), within)
            if stage != shown or time.monotonic() - shown_at >= PROGRESS_EVERY:
                click.echo(_run_line(run), err=True)
                shown, shown_at = stage, time.monotonic()
        time.sleep(every)


@main.command()
@click.argument("dataset")
@click.option("--experiment", "-e", required=True, help="experiment name")
@click.option("--labels", default="", help="comma-separated; default: every label folder")
@click.option(
    "--mode",
    type=click.Choice(["auto", "tfidf", "head", "contrastive", "finetune", "ensemble"]),
    default="auto",
)
@click.option("--time-budget", type=float, default=0.0, help="seconds; 0 = no limit")
@click.option("--hpo-trials", type=int, default=0)
@click.option("--min-macro-f1", type=float, default=None,
              help="the registration bar, 0-1 (default: the service's)")  # fmt: skip
@click.option("--multi-label", is_flag=True,
              help="a document may have several labels (one file in several folders)")  # fmt: skip
@click.option("--label-delimiter", default="|", show_default=True,
              help="a CSV dataset's separator between a row's labels")  # fmt: skip
@click.option("--promote", type=click.Choice(["always", "if_better"]), default="always",
              show_default=True,
              help="if_better: take @champion only where it beats the champion")  # fmt: skip
@click.option("--instance-type", default="",
              help="the machine type to train on (SageMaker, e.g. ml.g5.xlarge)")  # fmt: skip
@click.option("--wait", is_flag=True, help="wait for the run; exit 1 unless it registers")
@click.option("--poll", type=float, default=5.0, show_default=True)
@click.option("--idempotency-key", default="",
              help="sent as Idempotency-Key (default: a new one); retries reuse it")  # fmt: skip
@pass_client
def train(client: Client, dataset: str, experiment: str, labels: str, mode: str,
          time_budget: float, hpo_trials: int, min_macro_f1: float | None, multi_label: bool,
          label_delimiter: str, promote: str, instance_type: str, wait: bool, poll: float,
          idempotency_key: str) -> None:  # fmt: skip
    """Train a classifier on DATASET/<label>/ documents. The request is retried on timeouts
    and 502/503/504 with one Idempotency-Key, so it starts one run."""
    chosen = [label.strip() for label in labels.split(",") if label.strip()]
    if not chosen:
        folders = client.call("GET", f"{API}/datasets/labels", params={"path": dataset})["data"]
        chosen = [f["label"] for f in folders if f["documents"] > 0]
    body = {"labels": chosen, "path": dataset, "experiment_name": experiment, "mode": mode,
            "time_budget_seconds": time_budget, "hpo_trials": hpo_trials}  # fmt: skip
    if min_macro_f1 is not None:
        body["min_macro_f1"] = min_macro_f1
    if multi_label:
        body["multi_label"] = True
    if label_delimiter != "|":
        body["label_delimiter"] = label_delimiter
    if promote != "always":
        body["promote"] = promote
    if instance_type:
        body["instance_type"] = instance_type
    key = idempotency_key or str(uuid.uuid4())
    started = client.call("POST", f"{API}/process", retries=3, json=body,
                          headers={"Idempotency-Key": key})  # fmt: skip
    run_id = started["data"]["info"]["run_id"]
    if not wait:
        position = started["data"].get("queue_position")
        queued = f" (queued: #{position}, starts when a slot frees)" if position else ""
        client.show(started, f"started run {run_id}{queued} on {len(chosen)} labels: "
                    f"{', '.join(chosen)}")  # fmt: skip
        return
    click.echo(f"run {run_id} started; waiting", err=True)
    run = _wait_run(client, experiment, run_id, poll)
    client.show(run, _run_line(run))
    if run["status"] != "FINISHED" or not run.get("registered"):
        hint, highest = "", run.get("passes_bar_up_to")
        if run.get("gate") == "failed" and highest is not None:  # a hard task's bar: say how
            hint = (
                f"; the bar is yours to set: `custom-classifier promote {run_id} --min-macro-f1 "
                f"{math.floor(highest * 100) / 100:.2f}` registers it (its estimate passes "
                f"bars up to {highest:.4f})"
            )
        elif run.get("gate") == "failed" and "passes_bar_up_to" in run:  # (absent: older API)
            hint = "; no bar registers it: more documents a label would narrow its estimate"
        raise ApiError(f"run {run_id} did not produce a registered model{hint}")


@main.command()
@click.argument("experiment")
@click.option("--limit", default=3, show_default=True)
@click.option("--watch", is_flag=True, help="refresh until no run is RUNNING")
@click.option("--poll", type=float, default=5.0, show_default=True)
@pass_client
def status(client: Client, experiment: str, limit: int, watch: bool, poll: float) -> None:
    """The newest runs of an EXPERIMENT."""
    while True:
        runs = _runs(client, experiment, limit)
        if not watch or all(run["status"] in TERMINAL for run in runs):
            client.show(runs, "\n".join(map(_run_line, runs)) or "no runs")
            return
        click.echo("\n".join(map(_run_line, runs)) + "\n", err=True)
        time.sleep(poll)


@main.command()
@click.argument("runid")
@click.argument("texts", nargs=-1)
@click.option("--file", "files", multiple=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="classify a file: text, PDF, DOCX, HTML or .eml (repeatable)"
              )  # fmt: skip
@pass_client
def predict(client: Client, runid: str, texts: tuple[str, ...], files: tuple[Path, ...]) -> None:
    """Classify TEXTS (and --file documents) with a run id or models:/<name>@<alias>."""
    if not texts and not files:
        raise click.UsageError("give a text or --file")
    answers: list[dict[str, Any]] = []
    if texts:
        body = {"runid": runid, "texts": list(texts)}
        answers += client.call("POST", f"{API}/predict", json=body)["data"]
    for path in files:  # sent as they are: the API reads PDFs, Word files, pages and e-mails
        document = base64.b64encode(path.read_bytes()).decode()
        body = {"runid": runid, "document": document}
        answers.append(client.call("POST", f"{API}/predict", json=body)["data"])
    client.show(answers, "\n".join(map(_answer_line, answers)))


def _answer_line(answer: dict[str, Any]) -> str:
    """label<TAB>score; a multi-label answer: each label given with its probability; then
    "(out of scope, ood 0.99)" where the text is unlike the training documents."""
    outside = answer.get("out_of_scope")
    scope = f"  (out of scope, ood {answer['ood_score']:.2f})" if outside else ""
    if answer.get("labels") is None:
        flag = "  (abstained)" if answer["abstained"] else ""
        return f"{answer['label']}\t{answer['score']:.3f}{flag}{scope}"
    given = [f"{label} {answer['scores'][label]:.3f}" for label in answer["labels"]]
    return (
        ", ".join(given)
        or f"(no label passes its threshold; best {answer['label']} {answer['score']:.3f})"
    ) + scope


def _follow(client: Client, job: dict[str, Any], route: str, poll: float, doing: str
            ) -> dict[str, Any]:  # fmt: skip
    """A batch job's progress bar until it ends; its last status."""
    with click.progressbar(length=job.get("total") or 1, label=doing, file=sys.stderr) as bar:
        shown = 0
        while job["status"] not in {"COMPLETED", "FAILED"}:
            time.sleep(poll)
            job = client.call("GET", f"{API}/{route}/{job['job_id']}")["data"]
            if job.get("total"):
                bar.length = job["total"]
            bar.update(job["done"] - shown)
            shown = job["done"]
    return job


@main.command()
@click.argument("runid")
@click.argument("input_path")
@click.option("-n", "count", default=20, show_default=True, help="how many to suggest")
@click.option("--output-path", default="", help="where the job writes (default: "
              "_suggestions/<folder> beside INPUT_PATH)")  # fmt: skip
@click.option("--poll", type=float, default=3.0, show_default=True)
@pass_client
def suggest(client: Client, runid: str, input_path: str, count: int, output_path: str,
            poll: float) -> None:  # fmt: skip
    """The documents under INPUT_PATH worth labelling next: the model's least sure, spread
    over what they say. Waits for the job, then lists them best first."""
    body = {"runid": runid, "input_path": input_path, "n": count, "output_path": output_path}
    job = client.call("POST", f"{API}/suggest", json=body)["data"]
    job = _follow(client, job, "suggest", poll, "ranking")
    if job["status"] == "FAILED":
        raise ApiError(f"suggest job failed: {job.get('error', '')}")
    lines = [f"{s['rank']}\t{s['key']}\tguess {s['label']} ({s['score']:.3f}, margin "
             f"{s['margin']:.3f})" for s in job.get("suggestions") or []]  # fmt: skip
    client.show(job.get("suggestions") or [], "\n".join(lines) or "nothing to suggest")


@main.command()
@click.argument("run_id")
@click.option("--hours", default=24, show_default=True, help="the last N hours")
@pass_client
def drift(client: Client, run_id: str, hours: int) -> None:
    """How the texts RUN_ID's model was asked about compare with its training data, hour by
    hour (drift AUC 0.5: alike; about 5 % out of scope where nothing moved)."""
    report = client.call("GET", f"{API}/runs/{run_id}/drift", params={"hours": hours})["data"]
    lines = [f"{time.strftime('%Y-%m-%d %H:00', time.gmtime(h['hour']))}\t"
             f"{h['predictions']} predictions\tdrift AUC {h['drift_auc']:.2f}\t"
             f"{h['out_of_scope_share']:.0%} out of scope\tlabel shift {h['label_shift']:.2f}"
             for h in report["hours"]]  # fmt: skip
    client.show(report, "\n".join([*lines, report["verdict"]]))


@main.command("batch-predict")
@click.argument("runid")
@click.argument("input_path")
@click.argument("output_path")
@click.option("--instances", type=int, default=1, show_default=True,
              help="machines classifying shards of the input at once")  # fmt: skip
@click.option("--instance-type", default="", help="their machine type (SageMaker)")
@click.option("--wait", is_flag=True, help="follow the progress until it ends")
@click.option("--poll", type=float, default=3.0, show_default=True)
@pass_client
def batch_predict(client: Client, runid: str, input_path: str, output_path: str,
                  instances: int, instance_type: str, wait: bool, poll: float
                  ) -> None:  # fmt: skip
    """Classify every document under INPUT_PATH; results go to OUTPUT_PATH (S3)."""
    body = {"runid": runid, "input_path": input_path, "output_path": output_path,
            "instances": instances, "instance_type": instance_type}  # fmt: skip
    job = client.call("POST", f"{API}/batch_predict", json=body)["data"]
    if wait:
        job = _follow(client, job, "batch_predict", poll, "classifying")
    client.show(job, f"{job['job_id']} {job['status']}: {job['treated']} treated, "
                f"{job['not_treated']} not treated (of {job.get('total') or '?'}) "
                f"-> {job['output_uri']}")  # fmt: skip
    skipped = job.get("not_treated_documents", [])
    for item in skipped[:SKIPPED_SHOWN]:
        click.echo(f"  not treated {item['key']}: {item['reason']}", err=True)
    if job["status"] == "COMPLETED" and job["not_treated"] > min(len(skipped), SKIPPED_SHOWN):
        click.echo(f"  (all {job['not_treated']} in {job['manifest_uri']})", err=True)
    if job["status"] == "FAILED":
        raise ApiError(f"batch job failed: {job.get('error', '')}")


@main.command()
@click.argument("what", type=click.Choice(["experiment", "run", "dataset"]))
@click.argument("name")
@click.option("--hard", is_flag=True, help="remove everything (experiments only)")
@click.option("--yes", is_flag=True, help="do not ask")
@pass_client
def delete(client: Client, what: str, name: str, hard: bool, yes: bool) -> None:
    """Delete an experiment (soft, or --hard), a run (soft) or a dataset (every object under
    it, refused while a job reads it)."""
    if hard and what != "experiment":
        raise click.UsageError("--hard applies to experiments")
    if hard and not yes:
        click.confirm(f"remove experiment {name!r}, its runs, models and artifacts?", abort=True)
    if what == "dataset":
        if not yes:
            click.confirm(f"remove dataset {name!r}, every object under it?", abort=True)
        answer = client.call("POST", f"{API}/datasets/delete", json={"path": name})
        data = answer["data"]
        client.show(answer, f"dataset {data['data_uri']} deleted: {data['objects_removed']} "
                    "objects removed")  # fmt: skip
        return
    if what == "run":
        answer = client.call("POST", f"{API}/run/soft_delete", json={"run_id": name})
    else:
        kind = "hard_delete" if hard else "soft_delete"
        answer = client.call("POST", f"{API}/experiment/{kind}", json={"experiment_name": name})
    client.show(answer, answer["status"])


@main.command()
@click.argument("run_id")
@click.option("--reason", default="", help="kept on the run with who cancelled it")
@pass_client
def cancel(client: Client, run_id: str, reason: str) -> None:
    """Stop a queued or running training RUN_ID; it ends KILLED and registers nothing."""
    run = client.call("POST", f"{API}/run/cancel", json={"run_id": run_id, "reason": reason})
    client.show(run["data"], _run_line(run["data"]))


@main.command()
@click.argument("what", type=click.Choice(["experiment", "run"]))
@click.argument("name")
@pass_client
def restore(client: Client, what: str, name: str) -> None:
    """Undo the soft delete of an experiment (by name) or a run (by id)."""
    body = {"experiment_name": name} if what == "experiment" else {"run_id": name}
    answer = client.call("POST", f"{API}/{what}/restore", json=body)
    client.show(answer, answer["status"])


@main.command()
@click.argument("run_id")
@click.option(
    "--min-macro-f1",
    type=float,
    default=None,
    help="register a run the bar refused, where its estimate passes this bar",
)
@pass_client
def promote(client: Client, run_id: str, min_macro_f1: float | None) -> None:
    """Make RUN_ID's registered model the `champion` (what models:/<name>@champion serves)."""
    body: dict[str, Any] = {"run_id": run_id}
    if min_macro_f1 is not None:
        body["min_macro_f1"] = min_macro_f1
    answer = client.call("POST", f"{API}/promote", json=body)["data"]
    client.show(answer, f"{answer['registered_model']} version {answer['version']} is now "
                f"@{answer['alias']}")  # fmt: skip


@main.command()
@click.argument("run_id")
@click.option("--all", "every", is_flag=True, help="every evaluated document, right or wrong")
@click.option("--true-label", default=None, help="only documents of this true label")
@click.option("--predicted-label", default=None, help="only documents predicted as this label")
@click.option("--missed-label", default=None, help="multi-label: it has this label, not given")
@click.option("--added-label", default=None, help="multi-label: given this label, not its own")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@pass_client
def mistakes(client: Client, run_id: str, every: bool, true_label: str | None,
             predicted_label: str | None, missed_label: str | None, added_label: str | None,
             limit: int) -> None:  # fmt: skip
    """The documents RUN_ID got wrong when it was evaluated: key, true -> predicted (score)."""
    params: dict[str, Any] = {"wrong_only": not every, "limit": limit}
    filters = {"true_label": true_label, "predicted_label": predicted_label,
               "missed_label": missed_label, "added_label": added_label}  # fmt: skip
    params.update({name: value for name, value in filters.items() if value is not None})
    data = client.call("GET", f"{API}/runs/{run_id}/test_predictions", params=params)["data"]
    lines = [f"{data['wrong']} of {data['documents']} wrong ({data['estimate']}); "
             f"{len(data['rows'])} of {data['matching']} listed"]  # fmt: skip
    lines += [
        f"{row['key']}  {', '.join(row['true_labels'])} -> {', '.join(row['predicted_labels'])} "
        f"({row['score']:.2f})"
        for row in data["rows"]
    ]
    client.show(data, "\n".join(lines))


if __name__ == "__main__":
    main()

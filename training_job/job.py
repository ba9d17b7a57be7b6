"""The training job from dataset to registered model, as one function."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from documents import is_csv_dataset
from documents.extract import Limits
from training_job import kinds
from training_job.candidates import Selection, select_model
from training_job.config import Hyperparameters, JobPaths
from training_job.data import (
    Dataset,
    DatasetError,
    Document,
    DocumentSource,
    FolderSource,
    S3Source,
    check_trainable,
    read_csv_dataset,
    read_dataset,
)
from training_job.evaluate import (
    TEST_SPLIT,
    evaluate,
    macro_f1_interval,
    majority_macro_f1,
    metric_key,
    plot_confusion,
    plot_curves,
    predicted_labels,
    write_predictions,
    write_report,
)
from training_job.extraction_cache import S3TextCache
from training_job.hpo import Tuning
from training_job.kinds.base import IMBALANCE_STRATEGY, label_truth, resolve_base_model
from training_job.onnx_export import PARITY_DOCUMENTS, choose_runtime
from training_job.promotion import Promotion, judge
from training_job.scope import Scope, scope_for
from training_job.serving import TextClassifier
from training_job.split import MIN_DOCS_PER_LABEL, Split, stratified_split
from training_job.tracking import (
    METRIC_PASSES_BAR_UP_TO,
    TAG_CHOICE,
    TAG_ESTIMATE,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_HPO,
    TAG_MODEL_KIND,
    TAG_MODEL_URI,
    TAG_PROMOTION,
    TAG_RUNTIME,
    TAG_RUNTIME_REASON,
    TAG_SCOPE,
    TAG_SKIPPED,
    RunTracker,
    label_maps,
    registered_model_name,
)

log = logging.getLogger(__name__)

# A test split smaller than this decides the bar by chance (6 documents at 8 a label):
# every document goes into a cross-validated estimate instead.
SMALL_TEST = 30


@dataclass(frozen=True)
class JobResult:
    run_id: str
    metrics: dict[str, float]
    passed_gate: bool
    registered_version: str | None
    dataset: Dataset


def open_source(hp: Hyperparameters, paths: JobPaths) -> DocumentSource:
    """The SageMaker channel when it holds data, else the S3 prefix itself."""
    if paths.channel.is_dir() and any(paths.channel.iterdir()):
        key_prefix = urlparse(hp.data_uri).path.strip("/") if hp.data_uri else ""
        return FolderSource(paths.channel, key_prefix=key_prefix)
    if not hp.data_uri:
        raise DatasetError("no data: set data_uri (s3://bucket/prefix) or fill the channel")
    import boto3

    client = boto3.client("s3", config=_pool(hp))
    return S3Source.from_uri(client, hp.data_uri)


def _pool(hp: Hyperparameters) -> Any:
    from botocore.config import Config

    return Config(max_pool_connections=max(10, hp.read_workers))


def open_cache(hp: Hyperparameters) -> S3TextCache | None:
    """The extraction cache the service named, or None (a channel-only local run)."""
    if not hp.extraction_cache_uri:
        return None
    import boto3

    return S3TextCache(boto3.client("s3", config=_pool(hp)), hp.extraction_cache_uri,
                       Limits.of(hp))  # fmt: skip


def read_training_data(hp: Hyperparameters, paths: JobPaths, labels: list[str]) -> Dataset:
    """The label folders under data_uri, or the Comprehend-format CSV it names (from the
    SageMaker channel when it holds the file)."""
    key = urlparse(hp.data_uri).path.strip("/")
    if not is_csv_dataset(key):
        cache = open_cache(hp)
        dataset = read_dataset(open_source(hp, paths), labels, hp.max_document_bytes,
                               hp.read_workers, hp.multi_label, Limits.of(hp), cache)  # fmt: skip
        if cache is not None:
            dataset.extraction_cache = asdict(cache.counts)
        return dataset
    copied = paths.channel / key.rsplit("/", 1)[-1]
    if copied.is_file():
        raw = copied.read_bytes()
    else:
        import boto3

        bucket = urlparse(hp.data_uri).netloc
        raw = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return read_csv_dataset(raw, key, labels, hp.label_delimiter, hp.multi_label)


def log_selection(tracker: RunTracker, selection: Selection, measure: str) -> None:
    """Every candidate's score on the selection `measure` (e.g. macro_f1) and time; the
    winner and skip reasons as tags."""
    for candidate in selection.candidates:
        tracker.log_metrics(
            {
                f"candidate_{candidate.kind}_val_{measure}": candidate.selection_f1,
                f"candidate_{candidate.kind}_seconds": candidate.seconds,
                **{f"candidate_{candidate.kind}_{k}": v for k, v in candidate.details.items()},
            }
        )
    tracker.log_metrics(
        {f"candidate_{kind}_estimated_seconds": s for kind, s in selection.estimates.items()}
    )
    tags = {TAG_MODEL_KIND: selection.winner.kind, TAG_CHOICE: selection.reason}
    tags.update({f"{TAG_SKIPPED}.{kind}": why for kind, why in selection.skipped.items()})
    if selection.tuning is not None:
        tags[TAG_HPO] = log_tuning(tracker, selection.tuning)
    tracker.set_tags(tags)


def log_tuning(tracker: RunTracker, tuning: Tuning) -> str:
    """Each trial as a step of `hpo_trial_macro_f1`, the table as an artifact; a summary tag."""
    for trial in tuning.trials:
        tracker.log_metrics({"hpo_trial_macro_f1": trial.macro_f1}, step=trial.number)
    best = tuning.best
    tracker.log_metrics({"hpo_best_macro_f1": best.macro_f1, "hpo_seconds": tuning.seconds})
    tracker.log_params({f"hpo_best_{name}": value for name, value in best.params.items()})
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "trials.json"
        rows = [dataclasses.asdict(t) for t in [tuning.defaults, *tuning.trials]]
        table.write_text(json.dumps({"kind": tuning.kind, "trials": rows}, indent=2))
        tracker.log_files([table], artifact_path="hpo")
    verdict = (
        f"kept trial {best.number} {best.params} (selection macro-F1 {best.macro_f1:.4f} vs "
        f"{tuning.defaults.macro_f1:.4f} at the defaults)"
        if tuning.improved
        else f"kept the defaults (selection macro-F1 {best.macro_f1:.4f}); no trial beat them"
    )
    stopped = f"; stopped early, {tuning.stopped}" if tuning.stopped else ""
    return f"{len(tuning.trials)} trials on {tuning.kind}: {verdict}{stopped}"


@dataclass(frozen=True)
class Estimate:
    """What the registration bar is judged on: the test split, or (where that would be a
    handful of documents) the winner's out-of-fold predictions over every document."""

    probabilities: np.ndarray
    truth: np.ndarray  # class indices, or (multi-label) 0/1 rows
    method: str  # e.g. "test split of 120 documents"
    keys: list[str]  # the documents estimated on, in the rows' order
    texts: list[str]  # and their texts
    cross_validated: bool = False  # out of fold: models that saw (k-1)/k of the documents
    out_of_scope: np.ndarray | None = None  # the test documents the served scope flags

    @property
    def measured_on(self) -> str:
        return "out of fold" if self.cross_validated else TEST_SPLIT

    @classmethod
    def of(cls, selection: Selection, split: Split, labels: list[str]) -> Estimate:
        winner = selection.winner
        multi_label = winner.classifier.config.multi_label
        if split.test:
            texts = [d.text for d in split.test]
            truth = label_truth(split.test, labels, multi_label)
            assessed = winner.classifier.assess(texts)
            return cls(assessed.probabilities, truth, f"test split of {len(truth)} documents",
                       [d.key for d in split.test], texts,
                       out_of_scope=assessed.out_of_scope)  # fmt: skip
        docs = split.train + split.validation
        held = winner.held_out
        if held is None or len(held.rows) != len(docs):
            raise RuntimeError(f"{winner.kind} gave no out-of-fold scores to estimate from")
        folds = int(winner.details.get("folds", 0))
        probs = winner.held_out_probabilities()
        held_docs = [docs[row] for row in held.rows]
        return cls(probs, label_truth(held_docs, labels, multi_label),
                   f"{folds}-fold cross-validation, out of fold, over all {len(docs)} "
                   f"documents (a test split would hold under {SMALL_TEST})",
                   [d.key for d in held_docs], [d.text for d in held_docs],
                   cross_validated=True)  # fmt: skip


def judged_score(metrics: dict[str, float], estimate: Estimate) -> float:
    """What `gate` holds against a bar: a cross-validated estimate's interval top (see
    `gate`), else the test macro-F1."""
    return metrics["test_macro_f1_high" if estimate.cross_validated else "test_macro_f1"]


def highest_passing_bar(metrics: dict[str, float], estimate: Estimate) -> float | None:
    """The highest `min_macro_f1` this run's estimate passes (`gate`'s rule), or None where
    it does not clearly beat the majority-class baseline (no bar lets it register). Logged,
    so a user may register the run later at a bar of their own without training again."""
    if metrics["test_macro_f1_low"] <= metrics["majority_macro_f1"]:
        return None
    return judged_score(metrics, estimate)


def chance_macro_f1(truth: np.ndarray, labels: int) -> float:
    """Macro-F1 of answering at random at the labels' rates: each label's F1 is then its
    prevalence, so their mean (1/K for K labels, one a document, however imbalanced)."""
    return 1.0 / labels if truth.ndim == 1 else float(truth.mean(axis=0).mean())


def registration_bar(hp: Hyperparameters, estimate: Estimate) -> tuple[float, str]:
    """The bar this run is held to, and how to say it: the request's `min_macro_f1`, else
    `min_gain_over_chance` of the way from chance to a perfect 1."""
    if hp.min_macro_f1 is not None:
        return hp.min_macro_f1, f"the bar {hp.min_macro_f1:.4f}"
    chance = chance_macro_f1(estimate.truth, estimate.probabilities.shape[1])
    bar = round(chance + hp.min_gain_over_chance * (1 - chance), 4)
    return bar, (
        f"the bar {bar:.4f} (the default: {hp.min_gain_over_chance:.2f} of the way from "
        f"chance, {chance:.4f}, to 1)"
    )


def gate(metrics: dict[str, float], hp: Hyperparameters, estimate: Estimate) -> tuple[bool, str]:
    """Passed when the estimate meets `min_macro_f1` and its 95% interval lies above the
    majority-class baseline; the reason says which bar and by how much.

    A cross-validated estimate misses the bar only when its whole interval lies under it:
    its fold models saw (k-1)/k of a few documents and score under the model served (on
    TREC at 8 a label, `contrastive` out of fold 0.69, on the test set 0.79)."""
    score, low = metrics["test_macro_f1"], metrics["test_macro_f1_low"]
    baseline = metrics["majority_macro_f1"]
    high = metrics["test_macro_f1_high"]
    said = f"macro-F1 {score:.4f} (95% interval {low:.4f}-{high:.4f}, {estimate.method})"
    bar, named = registration_bar(hp, estimate)
    if judged_score(metrics, estimate) < bar:
        top = f"; its interval tops out at {high:.4f}" if estimate.cross_validated else ""
        return False, f"{said} is below {named} by {bar - score:.4f}{top}"
    if highest_passing_bar(metrics, estimate) is None:
        return False, (
            f"{said} does not clearly beat the majority-class baseline {baseline:.4f}: "
            f"its interval starts at {low:.4f}, not above it (no bar registers it; more "
            "documents a label would narrow the interval)"
        )
    meets = f"reaches {named} within its interval" if score < bar else f"meets {named}"
    return True, f"{said} {meets} and clearly beats the majority-class baseline {baseline:.4f}"


# MLflow keeps a tag value of at most 8,000 characters.
MAX_TAG_CHARS = 8000


def fit_served_scope(selection: Selection, served: TextClassifier, split: Split,
                     labels: list[str], seed: int) -> Scope:  # fmt: skip
    """The served classifier's scope (training_job/scope.py), on the documents it saw."""
    winner = selection.winner
    held, rows = None, None
    if winner.held_out is not None:
        held, rows = winner.held_out.logits, winner.held_out.rows
    served.scope = scope_for(served, rows, held, split.train + split.validation, labels, seed)
    return served.scope


def scope_tag(scope: Scope, split: Split, labels: list[str]) -> str:
    """What the control plane compares live traffic with: the held-out in-scope score
    histogram, the threshold and each label's share of the training documents."""
    answers = [label for d in split.train + split.validation for label in d.label_set]
    shares = {label: round(answers.count(label) / len(answers), 5) for label in labels}
    found = {
        "method": scope.method,
        "threshold": round(scope.threshold, 6),
        "reference": [round(float(v), 6) for v in scope.reference],
        "label_shares": shares,
    }
    tag = json.dumps(found, ensure_ascii=False)
    if len(tag) > MAX_TAG_CHARS:  # many long label names: no label shift, the rest fits
        tag = json.dumps({**found, "label_shares": {}}, ensure_ascii=False)
    return tag


def scope_metrics(classifier: TextClassifier, estimate: Estimate) -> dict[str, float]:
    """The scope's threshold, what it was fitted on, and the share of the test documents
    (all in scope) it flags: about 1 - IN_SCOPE_QUANTILE where it holds."""
    scope = classifier.scope
    if scope is None:
        return {}
    found = {"scope_threshold": scope.threshold, "scope_documents": float(scope.documents)}
    if estimate.out_of_scope is not None:
        found["test_out_of_scope_share"] = float(np.mean(estimate.out_of_scope))
    return found


def parity_documents(split: Split) -> list[Document]:
    """What an ONNX variant is checked on: the validation split, topped up from training."""
    docs = split.validation[:PARITY_DOCUMENTS]
    return docs + split.train[: PARITY_DOCUMENTS - len(docs)]


def run_job(hp: Hyperparameters, paths: JobPaths, tracker: RunTracker) -> JobResult:
    """Read, split, fine-tune, evaluate, log and (if it passes the bar) register."""
    labels = list(dict.fromkeys(hp.labels))
    label2id, id2label = label_maps(labels)
    tracker.log_params({"label2id": label2id, "id2label": id2label})
    tracker.phase("reading")
    started = time.monotonic()
    dataset = read_training_data(hp, paths, labels)
    tracker.log_dataset(dataset)
    tracker.log_metrics(
        {
            "documents_treated": len(dataset.documents),
            "documents_not_treated": len(dataset.rejected),
            "read_seconds": time.monotonic() - started,
        }
    )
    check_trainable(dataset, MIN_DOCS_PER_LABEL)
    tracker.phase("splitting")
    split = stratified_split(dataset.documents, hp.val_fraction, hp.test_fraction, hp.seed)
    if len(split.test) < SMALL_TEST:  # a coin toss: estimate by cross-validation instead
        split = stratified_split(dataset.documents, hp.val_fraction, 0.0, hp.seed)
    tracker.log_params(
        {
            "dataset_sha256": dataset.fingerprint(),
            "data_uri": hp.data_uri,
            "base_model": resolve_base_model(hp.base_model),
            "imbalance_strategy": IMBALANCE_STRATEGY,
            **{f"n_{name}": size for name, size in split.sizes().items()},
            **{
                name: getattr(hp, name)
                for name in (
                    "mode",
                    "multi_label",
                    "time_budget_seconds",
                    "min_gain_per_minute",
                    "hpo_trials",
                    "max_length",
                    "seed",
                    "window_overlap",
                    "max_windows",
                    "min_macro_f1",
                    "min_gain_over_chance",
                )
            },
            **kinds.option_values(hp),
        }
    )
    tracker.phase("training")
    progress = tracker.progress

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(metrics, step=epoch)
        progress.step(f"epoch {epoch}")

    selection = select_model(hp, labels, split, on_epoch, started, progress)
    log_selection(tracker, selection, "micro_f1" if hp.multi_label else "macro_f1")
    tracker.phase("exporting", "ONNX export and parity check")
    classifier_dir = paths.model_dir / "classifier"
    with tempfile.TemporaryDirectory(prefix="onnx-") as exported:
        docs = parity_documents(split)
        truth = label_truth(docs, labels, hp.multi_label)
        texts = [d.text for d in docs]
        choice = choose_runtime(selection.winner.classifier, texts, truth, Path(exported))
        choice.classifier.save(classifier_dir)  # what is evaluated below is what is served
        tracker.phase("exporting", "out-of-scope summary of the training documents")
        scope = fit_served_scope(selection, choice.classifier, split, labels, hp.seed)
        scope.save(classifier_dir)
    tracker.log_metrics(choice.metrics)
    tracker.set_tags({TAG_SCOPE: scope_tag(scope, split, labels)})
    tracker.set_tags({TAG_RUNTIME: choice.runtime, TAG_RUNTIME_REASON: choice.reason})
    tracker.phase("evaluating")
    winner = dataclasses.replace(selection.winner, classifier=choice.classifier)
    selection = dataclasses.replace(selection, winner=winner)
    classifier = winner.classifier
    estimate = Estimate.of(selection, split, labels)
    probs, truth = estimate.probabilities, estimate.truth
    thresholds = classifier.config.thresholds
    evaluation = evaluate(probs, truth, labels, thresholds)
    predicted = predicted_labels(probs, thresholds)
    low, high = macro_f1_interval(truth, predicted, len(labels), hp.seed)
    metrics = {
        **evaluation.metrics,
        "test_macro_f1_low": low,
        "test_macro_f1_high": high,
        "majority_macro_f1": majority_macro_f1(truth, len(labels)),
        "estimate_documents": len(truth),  # the ECE and every test_* metric are over these
        "train_seconds": sum(c.seconds for c in selection.candidates)
        + (selection.tuning.seconds if selection.tuning else 0.0),
        "temperature": classifier.config.temperature,
        **{
            f"threshold_{metric_key(label)}": t
            for label, t in zip(labels, thresholds, strict=False)
        },
        "calibration_documents": selection.winner.details.get("calibration_documents", 0),
        **scope_metrics(classifier, estimate),
    }
    tracker.log_metrics(metrics)
    tracker.set_tags({TAG_ESTIMATE: estimate.method})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tracker.log_files(
            [
                write_report(evaluation, folder),
                plot_confusion(evaluation, labels, folder, estimate.measured_on),
                plot_curves(probs, truth, labels, folder, estimate.measured_on),
                write_predictions(
                    estimate.keys, probs, truth, labels, estimate.method, folder, thresholds
                ),
            ],
            artifact_path="evaluation",
        )
    tracker.phase("logging_model")
    model_uri = tracker.log_model(classifier_dir, classifier.requirements())
    passed, reason = gate(metrics, hp, estimate)
    reachable = highest_passing_bar(metrics, estimate)
    bars = {"registration_bar": registration_bar(hp, estimate)[0]}
    if reachable is not None:
        bars[METRIC_PASSES_BAR_UP_TO] = reachable
    tracker.log_metrics(bars)
    tracker.set_tags({TAG_GATE: "passed" if passed else "failed", TAG_GATE_REASON: reason,
                      TAG_MODEL_URI: model_uri})  # fmt: skip
    cancelled = tracker.cancelled()  # a cancelled run never becomes a model to serve
    registering = passed and not cancelled
    version = None
    if registering:
        tracker.phase("registering")
        name = registered_model_name(hp)
        promotion = Promotion(True, "")
        if hp.promote == "if_better":
            with tempfile.TemporaryDirectory(prefix="champion-") as downloads:
                found = tracker.champion(name, Path(downloads))
                champion, said = (found[1], f"{name} v{found[0]}") if found else (None, name)
                promotion = judge(probs, thresholds, truth, estimate.texts, labels, champion,
                                  said, hp.seed)  # fmt: skip
            tracker.log_metrics(promotion.metrics)
            tracker.set_tags({TAG_PROMOTION: promotion.reason})
        version = tracker.register(model_uri, name, champion=promotion.promote)
    log.info("run %s: %s; registered version %s", tracker.run_id, reason, version)
    return JobResult(tracker.run_id, metrics, passed, version, dataset)

"""`contrastive`: SetFit-style few-shot tuning. The base sentence encoder is fine-tuned so
that documents sharing a label embed close together and others apart, with
sentence-transformers' trainer and an in-batch cosine-similarity loss (every pair of
documents in a batch, see `in_batch_loss`), then a logistic regression is fitted on the
tuned embeddings. Tuning reads each document's opening window; the head is fitted on, and
serving embeds, up to `contrastive_max_windows` windows, through `head`'s classes.

The kind scales its work to the time budget: steps follow the seconds left (one measured
step), and a budget too small for one pass over the documents skips it. With a small
validation set it is scored by stratified k-fold on train+validation (the encoder tuned
again on each fold: no held-out document is ever seen), refitted on all, and calibrated on
the out-of-fold scores.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training_job.config import Hyperparameters
from training_job.device import training_device, uses_bf16
from training_job.kinds.base import (
    Fitted,
    HeldOut,
    KindTrainer,
    ModelKind,
    Search,
    SelectionData,
    StepCallback,
    calibrate,
    linear_logits,
    read_options,
    resolve_base_model,
    selection_score,
    training_docs_per_label,
)
from training_job.kinds.head import EmbeddingHeadClassifier, TextEncoder, head_model
from training_job.serving import ClassifierConfig, TextClassifier

if TYPE_CHECKING:
    from training_job.split import Split

log = logging.getLogger(__name__)

# Labels averaging more training documents than this: fine-tuning and the head have the
# data, and the pairs would be many; `auto` does not try the kind there.
MAX_DOCS_PER_LABEL = 40
# Share of the seconds left the kind may plan for (the rest: regressions, calibration, noise).
BUDGET_SHARE = 0.8


@dataclass(frozen=True)
class ContrastiveOptions:
    # Epochs over the documents, every pair in a batch compared at each step. SetFit's
    # pairs (CosineSimilarityLoss on drawn pairs, at least 20 similar and 20 dissimilar a
    # document) embed two texts for every pair; comparing every pair of a batch embeds each
    # text once for 15 comparisons: at 8 a label on short texts, 20 epochs tuned in a third
    # to a quarter of the time and scored -0.5 to +2 points of macro-F1 against them (README).
    contrastive_epochs: int = 20
    contrastive_max_steps: int = 500  # a bounded CPU time on the largest few-shot sets
    contrastive_batch_size: int = 16
    contrastive_learning_rate: float = 5e-5
    # Where one batch holds every document (2 labels at 8 a label), each step follows the
    # whole set's gradient, no sampling noise to average out: every tuning takes this many
    # times fewer epochs at as many times the learning rate (1: as above). At 2, SMS spam
    # and movie snippets at 8 a label (3 seeds each) scored +0.1 and +0.9 points of test
    # macro-F1 in 0.6x the time; on batches of a larger set (TREC at 8 a label), 10 epochs
    # at twice the rate lost 1.2 points.
    contrastive_full_batch_speedup: float = 2.0
    contrastive_c: float = 10.0  # the regression's inverse regularisation
    # Windows (of max_length tokens, spread from first to last) the head is fitted on and
    # serving embeds per document; the tuning reads each document's opening window. On BBC
    # (3 seeds each, the same tuned encoder): 4 windows scored 0.953/0.961/0.961 test
    # macro-F1 at 8/16/32 a label where 2 scored 0.941/0.944/0.956 (2 windows of 256
    # tokens: 0.951/0.955/0.955; 8 windows of 128, 2 seeds: +0.3 over 4 for twice the work).
    contrastive_max_windows: int = 4
    # k of the k-fold score on a small validation set. 2 folds train on half the documents
    # and lost to head's 5-fold score on TREC at 8 a label (0.578 vs 0.587, while its test
    # macro-F1 was 0.76 vs 0.53): 3 keeps the comparison fair.
    contrastive_folds: int = 3
    # Seconds all of the kind's tunings (folds and final) may take (0: no cap but the time
    # budget's).
    contrastive_max_seconds: float = 0.0
    # Mixed precision of the tuning: "auto" (bfloat16 where the device computes it natively:
    # on this AVX512-BF16 CPU the same test macro-F1 at 8 a label, 3 corpora, in 0.7x the
    # time), "bf16" or "fp32".
    contrastive_precision: str = "auto"


def similarity_targets(labels: Any) -> Any:
    """How similar each pair of a batch's documents should embed: 1 for the same label, 0
    for different ones; multi-label (0/1 rows), the Jaccard index of their labels."""
    if labels.ndim == 1:
        return (labels[:, None] == labels[None, :]).float()
    labels = labels.float()
    shared = labels @ labels.T
    either = labels.sum(1)[:, None] + labels.sum(1)[None, :] - shared
    return shared / either.clamp(min=1)


def pair_loss(similarity: Any, targets: Any) -> Any:
    """Mean squared error of every distinct pair's cosine similarity to its target, similar
    and dissimilar pairs weighted alike (as SetFit draws them half and half): with many
    labels most pairs of a batch are dissimilar."""
    import torch

    distinct = ~torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    errors = (similarity - targets) ** 2
    halves = [errors[distinct & part] for part in (targets > 0, targets == 0)]
    means = [half.mean() for half in halves if half.numel()]
    if not means:  # a batch of one document: nothing to compare
        return similarity.sum() * 0.0
    return torch.stack(means).mean()


def in_batch_loss(encoder: Any) -> Any:
    """A sentence-transformers loss comparing every pair of documents in a batch
    (CosineSimilarityLoss's error, each text embedded once). The library's batch triplet
    losses compare in batch too, but take one class a document (no multi-label) and scored
    under this at 8 a label (SMS spam 0.923 vs 0.947, seed 0). Adding a supervised
    contrastive term (0.1 x SupCon, temperature 0.07) moved test macro-F1 by -0.7 to +0.7 at
    16 a label and -0.4 to -0.8 at 8 (TREC, SMS spam, movie snippets, 3 seeds), and a
    cross-entropy pass over body and head after the tuning +0.1 (TREC at 16): neither taken."""
    from torch import nn
    from torch.nn.functional import normalize

    class InBatchCosineSimilarityLoss(nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, features: Any, labels: Any) -> Any:
            embedded = normalize(self.model(features[0])["sentence_embedding"], dim=-1)
            return pair_loss(embedded @ embedded.T, similarity_targets(labels))

    return InBatchCosineSimilarityLoss(encoder)


def _reporting(on_step: StepCallback, stage: str, steps: int) -> Any:
    """A trainer callback telling `on_step` each step taken."""
    from transformers import TrainerCallback

    class Reporting(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            on_step(f"{stage}: step {state.global_step} of {steps}")

    return Reporting()


def _on_cpu(encoder: Any, config: ClassifierConfig) -> TextEncoder:
    """A sentence-transformers encoder as the kind embeds, exports and serves it: its
    Hugging Face model (under the pooling modules) on the CPU."""
    transformer: Any = encoder[0]
    return TextEncoder(transformer.auto_model.to("cpu").eval(), transformer.tokenizer, config)


@dataclass(frozen=True)
class _Timings:
    """Measured seconds of the kind's units of work."""

    load: float  # the base encoder, once a tuning
    batch: float  # the loss's forward and backward pass over a full batch
    update: float  # the optimiser's step (the same for any batch)
    embed_all: float  # every document's windows, for a head

    @property
    def around_steps(self) -> float:
        """A tuning's seconds besides its steps."""
        return self.load + self.embed_all

    def step(self, fill: float) -> float:
        """One step whose batches are on average this full: the passes go with the
        documents (a 5-document batch took 0.3x a 16-document one), the update does not."""
        return self.batch * fill + self.update


class _Trainer(KindTrainer):
    def __init__(self, data: SelectionData) -> None:
        self.data = data
        self.truth = data.truth
        self.strata = data.strata
        self.texts = data.texts
        self.base = resolve_base_model(data.hp.base_model)
        self.device = training_device(data.hp.device)
        options = read_options(ContrastiveOptions, data.hp)
        self.bf16 = uses_bf16(options.contrastive_precision, self.device)
        self.max_steps: int | None = None  # steps a tuning may take (set by too_slow)
        import torch

        torch.set_num_threads(data.hp.num_threads or len(os.sched_getaffinity(0)))

    def _folds(self, options: ContrastiveOptions) -> int:
        if not self.data.cross_validated:
            return 0
        return min(options.contrastive_folds, min(Counter(self.strata.tolist()).values()))

    @staticmethod
    def _one_pass(options: ContrastiveOptions, documents: int) -> int:
        """Steps of one epoch over this many documents."""
        return -(-documents // options.contrastive_batch_size)

    def _schedule(self, options: ContrastiveOptions) -> tuple[int, float]:
        """Epochs and learning rate of every tuning of this fit (the folds' as the final's)."""
        epochs, rate = options.contrastive_epochs, options.contrastive_learning_rate
        speedup = options.contrastive_full_batch_speedup
        if speedup > 0 and self._one_pass(options, len(self.texts)) == 1:
            return max(1, round(epochs / speedup)), rate * speedup
        return epochs, rate

    @staticmethod
    def _fill(options: ContrastiveOptions, documents: int) -> float:
        """How full an epoch's batches are on average (the last one may be short)."""
        batches = _Trainer._one_pass(options, documents)
        return documents / (batches * options.contrastive_batch_size)

    def _planned_steps(self, options: ContrastiveOptions, documents: int) -> int:
        """Steps of one tuning on this many documents."""
        every_epoch = self._schedule(options)[0] * self._one_pass(options, documents)
        steps = max(1, min(every_epoch, options.contrastive_max_steps))
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def _load(self, max_length: int) -> Any:
        """The base encoder on the training device, reading each document's opening window."""
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(self.base, device=self.device)
        encoder.max_seq_length = max_length
        return encoder

    @cached_property
    def timings(self) -> _Timings:
        """The kind's unit costs, measured on the base encoder: loading it, one training step
        (the loss's forward and backward pass over a full batch, in the tuning's precision,
        and the optimiser's update) and embedding every document's windows for the head.
        Three forward passes stood in for a step before, and with the embeddings left out the
        kind took 1.4-1.8x its estimate (BBC at 32 a label: 538 s for 306), so a time budget
        was overrun as much; with every step a full batch and no update, 32 movie snippets
        took 0.7x theirs (78 s for 113)."""
        import torch
        from sentence_transformers.util import batch_to_device

        options = read_options(ContrastiveOptions, self.data.hp)
        began = time.monotonic()
        encoder = self._load(self.data.hp.max_length)
        load = time.monotonic() - began
        rows = [i % len(self.texts) for i in range(options.contrastive_batch_size)]
        features = batch_to_device(encoder.preprocess([self.texts[i] for i in rows]),
                                   torch.device(self.device))  # fmt: skip
        labels = torch.as_tensor(self.truth[rows], device=self.device)
        loss = in_batch_loss(encoder)
        optimiser = torch.optim.AdamW(encoder.parameters())
        encoder.train()

        def passes() -> None:
            encoder.zero_grad(set_to_none=True)  # as the trainer does every step
            with torch.autocast(torch.device(self.device).type, torch.bfloat16,
                                enabled=self.bf16):  # fmt: skip
                value = loss([features], labels)
            value.backward()

        def timed(work: Callable[[], None]) -> float:
            began = time.monotonic()
            work()
            if torch.device(self.device).type == "cuda":
                torch.cuda.synchronize()  # a GPU answers before it is done
            return time.monotonic() - began

        passes()  # warm-up: a cold pass is 2-5x slower
        optimiser.step()  # and the first update allocates its state
        batch = min(timed(passes), timed(passes))  # one pass read up to a quarter high
        update = min(timed(optimiser.step), timed(optimiser.step))
        config = self.data.config(Contrastive.name, options.contrastive_max_windows)
        embed_all = _on_cpu(encoder, config).embedding_seconds(self.texts)
        return _Timings(load, batch, update, embed_all)

    def _fits(self, options: ContrastiveOptions) -> int:
        folds = self._folds(options)
        return folds + 1 if folds >= 2 else 1

    def cost(self) -> float:
        """Every tuning's planned steps (folds and final), loading the encoder for each, and
        embedding every document for its head (each fold embeds its own and its held-out
        documents), at the measured unit costs."""
        options = read_options(ContrastiveOptions, self.data.hp)
        folds, documents = self._folds(options), len(self.texts)
        tunings = [documents]  # each fold's: on the other folds' documents
        if folds >= 2:
            tunings += [documents * (folds - 1) // folds] * folds
        timings = self.timings
        stepping = sum(self._planned_steps(options, n) * timings.step(self._fill(options, n))
                       for n in tunings)  # fmt: skip
        return stepping + len(tunings) * timings.around_steps

    def too_slow(self, seconds_left: float | None) -> str | None:
        options = read_options(ContrastiveOptions, self.data.hp)
        fits = self._fits(options)
        limits = [options.contrastive_max_seconds] if options.contrastive_max_seconds > 0 else []
        if seconds_left is not None:
            limits.append(BUDGET_SHARE * max(seconds_left, 0))
        if not limits:
            return None  # nothing bounds the tuning but its epochs
        timings, allowed = self.timings, min(limits)
        tuning = allowed - fits * timings.around_steps  # what steps may take
        one_pass = self._one_pass(options, len(self.texts))
        step = timings.step(self._fill(options, len(self.texts)))  # the final's: the fullest
        affordable = int(max(tuning, 0) / (fits * step))
        if affordable < one_pass:
            return (
                f"one pass over the {len(self.texts)} documents ({one_pass} steps of about "
                f"{step:.1f} s, {fits} tunings, each loading the encoder and embedding "
                f"the documents) does not fit in {allowed:.0f} s (the time budget left, or "
                "contrastive_max_seconds)"
            )
        self.max_steps = affordable
        return None

    def tune(self, hp: Hyperparameters, rows: list[int], config: ClassifierConfig,
             stage: str = "all documents") -> tuple[TextEncoder, dict[str, float]]:  # fmt: skip
        """The base encoder tuned on these rows; what the tuning did, as metrics. Each step is
        reported (`<stage>: step 40 of 120`): a tuning is minutes of one candidate."""
        from datasets import Dataset
        from sentence_transformers import (
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )

        options = read_options(ContrastiveOptions, hp)
        if self.max_steps is None and self.too_slow(None) is not None:
            self.max_steps = self._one_pass(options, len(self.texts))
        steps, rate = self._planned_steps(options, len(rows)), self._schedule(options)[1]
        batch = min(options.contrastive_batch_size, len(rows))
        encoder = self._load(hp.max_length)
        truth = self.truth[rows]
        dataset = Dataset.from_dict({
            "sentence": [self.texts[i] for i in rows],
            "label": truth.astype(float).tolist() if truth.ndim == 2 else truth.tolist(),
        })  # fmt: skip
        began = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            args = SentenceTransformerTrainingArguments(
                output_dir=tmp, max_steps=steps, seed=hp.seed, use_cpu=self.device == "cpu",
                per_device_train_batch_size=options.contrastive_batch_size,
                learning_rate=rate, warmup_steps=0.1,
                save_strategy="no", report_to="none", logging_strategy="no",
                disable_tqdm=True, dataloader_num_workers=0, bf16=self.bf16,
            )  # fmt: skip
            SentenceTransformerTrainer(
                model=encoder, args=args, train_dataset=dataset,
                loss=in_batch_loss(encoder),
                callbacks=[_reporting(self.data.on_step, stage, steps)],
            ).train()  # fmt: skip
        tuned = _on_cpu(encoder, config)
        seconds = time.monotonic() - began
        pairs = steps * batch * (batch - 1) // 2  # compared, over every step's batch
        log.info("contrastive: %d steps (%d pairs) in %.1f s%s", steps, pairs, seconds,
                 " (bfloat16)" if self.bf16 else "")  # fmt: skip
        return tuned, {"pairs": pairs, "steps": steps, "learning_rate": rate,
                       "tuning_seconds": seconds}  # fmt: skip

    def _fit_head(self, hp: Hyperparameters, embeddings: np.ndarray, rows: list[int]) -> Any:
        c = read_options(ContrastiveOptions, hp).contrastive_c
        return head_model(c, self.data.multi_label).fit(embeddings, self.truth[rows])

    def _tuned_head(self, hp: Hyperparameters, rows: list[int], config: ClassifierConfig,
                    stage: str = "all documents"
                    ) -> tuple[TextEncoder, Any, dict[str, float]]:  # fmt: skip
        encoder, details = self.tune(hp, rows, config, stage)
        head = self._fit_head(hp, encoder.embed([self.texts[i] for i in rows]), rows)
        return encoder, head, details

    def fit(self, hp: Hyperparameters) -> Fitted:
        options = read_options(ContrastiveOptions, hp)
        config = self.data.config(Contrastive.name, options.contrastive_max_windows)
        train, val = self.data.train_rows, self.data.val_rows
        folds = self._folds(options)
        if folds < 2:  # validation large enough, or a label with one document
            encoder, head, details = self._tuned_head(hp, train, config)
            embedded = encoder.embed([self.texts[i] for i in val])
            held = HeldOut(val, linear_logits(head, embedded, self.data.multi_label))
        else:
            both = train + val
            held = HeldOut(both, self._out_of_fold(hp, both, folds, config))
            encoder, head, details = self._tuned_head(hp, both, config)
            details["folds"] = folds
        truth = self.truth[held.rows]
        details["calibration_documents"] = len(truth)
        classifier = EmbeddingHeadClassifier(encoder, head, calibrate(config, held.logits, truth))
        return Fitted(classifier, selection_score(truth, held.logits), details, held)

    def _out_of_fold(self, hp: Hyperparameters, rows: list[int], folds: int,
                     config: ClassifierConfig) -> np.ndarray:  # fmt: skip
        from sklearn.model_selection import StratifiedKFold

        out_of_fold = np.zeros((len(rows), len(self.data.labels)))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=hp.seed)
        split = splitter.split(np.zeros(len(rows)), self.strata[rows])
        for fold, (fit_at, held_at) in enumerate(split, start=1):
            fit_rows, held_rows = [rows[i] for i in fit_at], [rows[i] for i in held_at]
            encoder, head, _ = self._tuned_head(hp, fit_rows, config, f"fold {fold} of {folds}")
            embedded = encoder.embed([self.texts[i] for i in held_rows])
            out_of_fold[held_at] = linear_logits(head, embedded, self.data.multi_label)
        return out_of_fold


class Contrastive(ModelKind):
    name = "contrastive"
    summary = "MiniLM tuned on pairs of documents (SetFit-style) + logistic regression; few-shot"
    options = ContrastiveOptions
    space = {"contrastive_learning_rate": Search(5e-6, 1e-4, log=True)}
    underrated_by_folds = True

    def unsuited(self, hp: Hyperparameters, split: Split) -> str | None:
        average = training_docs_per_label(split)
        if average > MAX_DOCS_PER_LABEL:
            return (
                f"labels average {average:.0f} training documents (> {MAX_DOCS_PER_LABEL}); "
                "contrastive tuning is the few-shot model"
            )
        return None

    def trainer(self, data: SelectionData) -> KindTrainer:
        return _Trainer(data)

    def load(self, folder: Path, config: ClassifierConfig) -> TextClassifier:
        return EmbeddingHeadClassifier.load(folder, config)


KIND = Contrastive()

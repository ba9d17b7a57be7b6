"""`finetune`: the whole base encoder fine-tuned for sequence classification, with early
stopping on validation macro-F1. With a small validation set it is scored by k-fold, each
fold trained for its planned epochs (none picked on its held-out documents), and the model
served is trained the same way on every document.

The strongest kind with enough data a label, and the costliest: `auto` trains it only
where it can pay off and be compared fairly within the time budget. Imbalance: the loss is
weighted per class by n_train / (n_labels * n_class) ("balanced" class weights). Multi-label:
each label's log-odds under a binary cross-entropy, its positives weighted by
negatives / positives.
"""

from __future__ import annotations

import logging
import os
import random
import time
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training_job.config import Hyperparameters
from training_job.device import synchronize, training_device
from training_job.kinds.base import (
    EpochCallback,
    Fitted,
    HeldOut,
    KindTrainer,
    ModelKind,
    Search,
    SelectionData,
    StepCallback,
    calibrate,
    label_truth,
    read_options,
    resolve_base_model,
    selection_score,
    training_docs_per_label,
)
from training_job.kinds.head import masked_mean
from training_job.serving import (
    ON_ONNX,
    ON_TORCH,
    ClassifierConfig,
    OnnxNetwork,
    TextClassifier,
    row_batches,
    token_windows,
    torch_bytes,
    windows_tokenizer,
)

if TYPE_CHECKING:
    import torch

    from training_job.data import Document
    from training_job.split import Split

log = logging.getLogger(__name__)

# Labels averaging fewer training documents than this: fine-tuning does not pay off.
FEW_SHOT_DOCS = 20
# With a small validation set, fine-tuning is compared by k-fold (its cost counts them).
FINETUNE_CV_FOLDS = 3
# A fit takes this much longer than its timed steps and passes (loading, batching, the
# scheduler, early-stopping copies): 1.1-1.4x measured on four corpora of 2,000 documents.
FINETUNE_OVERHEAD = 1.25


@dataclass(frozen=True)
class FinetuneOptions:
    """Defaults sized for a 2-core CPU."""

    epochs: int = 2
    # Small datasets get more epochs so the model sees at least this many optimiser steps.
    min_train_steps: int = 100
    max_epochs: int = 30
    learning_rate: float = 1e-4
    batch_size: int = 16
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    early_stopping_patience: int = 2
    # Training sees at most this many windows per document (1 = the opening window).
    train_windows: int = 1


# The fine-tuned network's file in a model folder served by onnxruntime.
CLASSIFIER_ONNX = "classifier.onnx"
# What the exported network answers per window (exports before scopes: logits alone).
NETWORK_OUTPUTS = ["logits", "features"]


class WindowLogits(TextClassifier):
    """Reads texts longer than its window as overlapping windows; a text's logits are its
    windows' mean. Subclasses run the network: PyTorch, or onnxruntime (no torch)."""

    window_tokenizer: Any

    @abstractmethod
    def forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Each window's logits (windows x labels) and its last hidden state averaged over
        its tokens (None: a network exported before it had that output)."""

    def logits(self, texts: list[str]) -> np.ndarray:
        """Mean window logits per text (before temperature)."""
        return self.represent(texts)[0]

    def represent(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean window logits per text, and its windows' mean pooled features (L2-normed)."""
        ids, mask, owners = token_windows(self.window_tokenizer, self.config, texts)
        totals = np.zeros((len(texts), len(self.config.id2label)), dtype=np.float64)
        pooled: np.ndarray | None = None
        for rows, width in row_batches(mask, self.config.batch_size):
            logits, features = self.forward(ids[rows, :width], mask[rows, :width])
            np.add.at(totals, owners[rows], logits)
            if features is not None:
                if pooled is None:
                    pooled = np.zeros((len(texts), features.shape[1]))
                np.add.at(pooled, owners[rows], features.astype(np.float64))
        counts = np.maximum(np.bincount(owners, minlength=len(texts)).astype(np.float64), 1)
        if pooled is not None:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return totals / counts[:, None], pooled


class WindowedClassifier(WindowLogits):
    """The fine-tuned sequence classifier on PyTorch (a Hugging Face model and tokenizer)."""

    def __init__(self, model: Any, tokenizer: Any, config: ClassifierConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.window_tokenizer = windows_tokenizer(tokenizer)
        self.config = config

    def size_bytes(self) -> int:
        return torch_bytes(self.model)

    def requirements(self) -> frozenset[str]:
        return ON_TORCH

    @classmethod
    def load(cls, folder: Path | str) -> WindowedClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        config = ClassifierConfig.read(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        model.eval()
        return cls(model, tokenizer, config)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.config.write(folder)

    def windows(self, texts: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token windows for all texts (unpadded) and, for each window, the index of its text."""
        ids, mask, owners = token_windows(self.window_tokenizer, self.config, texts)
        return [row[: int(m.sum())].tolist() for row, m in zip(ids, mask, strict=True)], [
            int(o) for o in owners
        ]

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        device = next(self.model.parameters()).device  # cuda while training on a GPU
        with torch.inference_mode():
            logits, features = logits_and_features(self.model)(
                torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
            )
        return logits.float().cpu().numpy(), features.float().cpu().numpy()

    def export_onnx(self, folder: Path) -> bool:
        from training_job.onnx_export import export_network

        ids, mask, _ = token_windows(self.window_tokenizer, self.config,
                                     ["an example text to trace", "and another"])  # fmt: skip
        export_network(logits_and_features(self.model), {"input_ids": ids, "attention_mask": mask},
                       NETWORK_OUTPUTS, folder / CLASSIFIER_ONNX)  # fmt: skip
        return True

    def on_onnx(self, folder: Path, runtime: str) -> OnnxWindowedClassifier:
        config = replace(self.config, runtime=runtime)
        network = OnnxNetwork(folder / CLASSIFIER_ONNX, NETWORK_OUTPUTS, runtime)
        return OnnxWindowedClassifier(network, self.window_tokenizer, config)


def logits_and_features(model: Any) -> Any:
    """The sequence classifier as a torch module from (ids, mask) to its logits and its
    last hidden state averaged over the window's tokens (what out-of-scope is measured on)."""
    import torch

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             output_hidden_states=True)  # fmt: skip
            return out.logits, masked_mean(out.hidden_states[-1], attention_mask)

    return LogitsAndFeatures()


class OnnxWindowedClassifier(WindowLogits):
    """The fine-tuned classifier on onnxruntime and `tokenizers`: no torch, no transformers."""

    def __init__(self, network: OnnxNetwork, window_tokenizer: Any,
                 config: ClassifierConfig) -> None:  # fmt: skip
        self.network = network
        self.window_tokenizer = window_tokenizer
        self.config = config

    @classmethod
    def load(cls, folder: Path, config: ClassifierConfig) -> OnnxWindowedClassifier:
        network = OnnxNetwork(folder / CLASSIFIER_ONNX, NETWORK_OUTPUTS, config.runtime)
        return cls(network, windows_tokenizer(folder), config)

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        found = self.network.run(ids, mask)
        return found[0], found[1] if len(found) > 1 else None

    def size_bytes(self) -> int:
        return self.network.size_bytes()

    def requirements(self) -> frozenset[str]:
        return ON_ONNX

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.network.save(folder / CLASSIFIER_ONNX)
        self.window_tokenizer.save(str(folder / "tokenizer.json"))
        self.config.write(folder)


@dataclass(frozen=True)
class TrainingOutcome:
    classifier: WindowedClassifier
    val_f1: float
    val_logits: np.ndarray  # the kept epoch's, one row per validation document


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(labels: list[int], num_labels: int) -> torch.Tensor:
    import torch

    counts = Counter(labels)
    total = len(labels)
    weights = [total / (num_labels * counts[i]) if counts[i] else 0.0 for i in range(num_labels)]
    return torch.tensor(weights, dtype=torch.float)


def loss_function(targets: torch.Tensor, num_labels: int) -> torch.nn.Module:
    """Cross-entropy with balanced class weights, or (multi-label: 0/1 rows of targets) a
    binary cross-entropy per label, its positives weighted by negatives / positives."""
    import torch

    if targets.ndim == 1:
        return torch.nn.CrossEntropyLoss(weight=class_weights(targets.tolist(), num_labels))
    positives = targets.sum(dim=0)
    weight = (len(targets) - positives) / positives.clamp(min=1)
    return torch.nn.BCEWithLogitsLoss(pos_weight=weight.clamp(min=1.0, max=100.0))


def planned_epochs(options: FinetuneOptions, steps_per_epoch: int) -> int:
    """`epochs`, raised for small datasets to reach `min_train_steps`, capped at `max_epochs`."""
    needed = -(-options.min_train_steps // steps_per_epoch)
    return max(1, min(max(options.epochs, needed), max(options.epochs, options.max_epochs)))


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rises linearly for `warmup` steps, then falls linearly to 0 at `total`."""
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _train_examples(
    classifier: WindowedClassifier, docs: list[Document], truth: np.ndarray, windows: int
) -> tuple[list[list[int]], torch.Tensor]:
    """Token windows to train on (the first `windows` of each document) and their targets:
    the document's class, or (multi-label) its row of 0/1 labels."""
    import torch

    all_windows, owners = classifier.windows([d.text for d in docs])
    seen: Counter[int] = Counter()
    ids: list[list[int]] = []
    rows: list[int] = []
    for seq, owner in zip(all_windows, owners, strict=True):
        if seen[owner] < windows:
            seen[owner] += 1
            ids.append(seq)
            rows.append(owner)
    targets = torch.as_tensor(truth[rows])
    return ids, targets.float() if truth.ndim == 2 else targets.long()


def _batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def validation_logits(
    classifier: WindowedClassifier, docs: list[Document], labels: list[str]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Windowed logits, truth and the selection measure on the validation documents."""
    logits = classifier.logits([d.text for d in docs])
    truth = label_truth(docs, labels, classifier.config.multi_label)
    return logits, truth, selection_score(truth, logits)


def build_classifier(hp: Hyperparameters, labels: list[str]) -> WindowedClassifier:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = resolve_base_model(hp.base_model)
    id2label = dict(enumerate(labels))
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=id2label,
        label2id={label: i for i, label in id2label.items()},
        problem_type="multi_label_classification" if hp.multi_label else None,
    )
    config = ClassifierConfig(
        id2label=id2label,
        max_length=hp.max_length,
        window_overlap=hp.window_overlap,
        max_windows=hp.max_windows,
        multi_label=hp.multi_label,
    )
    return WindowedClassifier(model, tokenizer, config)


def _prepared(
    hp: Hyperparameters, labels: list[str], split: Split, options: FinetuneOptions
) -> tuple[WindowedClassifier, list[list[int]], torch.Tensor, list[torch.nn.Parameter]]:
    """The classifier to train, its training windows and their targets, and the weights it
    trains (what fine_tune trains and estimate_finetune_seconds times)."""
    import torch

    torch.set_num_threads(hp.num_threads or len(os.sched_getaffinity(0)))
    classifier = build_classifier(hp, labels)
    model = classifier.model.to(training_device(hp.device))
    # Word embeddings hold half the weights; freezing them halves optimiser work per step
    # and keeps rare-token vectors from drifting on small datasets.
    model.get_input_embeddings().weight.requires_grad_(False)
    truth = label_truth(split.train, labels, hp.multi_label)
    seqs, targets = _train_examples(classifier, split.train, truth, options.train_windows)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return classifier, seqs, targets, trainable


def fine_tune(
    hp: Hyperparameters, labels: list[str], split: Split, on_epoch: EpochCallback,
    on_step: StepCallback = lambda detail: None, stage: str = "",
) -> TrainingOutcome:  # fmt: skip
    """Train on split.train and keep the epoch with the best validation macro-F1 (stopping
    early); with no validation documents, train the planned epochs, uncalibrated (a fold's
    held-out documents must not choose its epoch: at 32 BBC documents a label, epochs
    picked on them scored fine-tuning out of fold over head and tf-idf, and the model served
    scored 3.8 points under head on the test set)."""
    import torch

    options = read_options(FinetuneOptions, hp)
    seed_everything(hp.seed)
    classifier, seqs, targets, trainable = _prepared(hp, labels, split, options)
    model = classifier.model
    device = next(model.parameters()).device
    targets = targets.to(device)
    loss_fn = loss_function(targets, len(labels)).to(device)
    batch_size = options.batch_size
    steps_per_epoch = max(1, -(-len(seqs) // batch_size))
    epochs = planned_epochs(options, steps_per_epoch)
    optimizer = torch.optim.AdamW(
        trainable, lr=options.learning_rate, weight_decay=options.weight_decay
    )
    scheduler = linear_warmup_decay(
        optimizer, int(options.warmup_ratio * steps_per_epoch * epochs), steps_per_epoch * epochs
    )
    pad_id = classifier.tokenizer.pad_token_id or 0
    rng = random.Random(hp.seed)
    best_f1, best_epoch, best_state = -1.0, 0, None
    best_logits = np.zeros((0, len(labels)))
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = list(range(len(seqs)))
        rng.shuffle(order)
        total_loss = 0.0
        for step, start in enumerate(range(0, len(order), batch_size), start=1):
            on_step(f"{stage}epoch {epoch}: step {step} of {steps_per_epoch}")
            batch = order[start : start + batch_size]
            ids, mask = (t.to(device) for t in _batch([seqs[i] for i in batch], pad_id))
            loss = loss_fn(model(input_ids=ids, attention_mask=mask).logits, targets[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total_loss += loss.item() * len(batch)
        model.eval()
        metrics = {"train_loss": total_loss / len(seqs)}
        if split.validation:
            logits, truth, val_f1 = validation_logits(classifier, split.validation, labels)
            metrics["val_macro_f1"] = val_f1
        log.info("epoch %d: %s", epoch, metrics)
        on_epoch(epoch, metrics)
        if not split.validation:
            continue
        if val_f1 > best_f1:
            best_f1, best_epoch, best_logits = val_f1, epoch, logits
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= options.early_stopping_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()  # exported, scoped and served on the CPU
    if not split.validation:  # calibrated by the caller (out-of-fold scores)
        return TrainingOutcome(classifier, float("nan"), np.zeros((0, len(labels))))
    # The kept epoch's validation logits calibrate the scores (no extra pass).
    classifier.config = calibrate(classifier.config, best_logits, truth)
    log.info("kept epoch %d of %d (val macro-F1 %.4f)", best_epoch, epoch, best_f1)
    return TrainingOutcome(classifier=classifier, val_f1=best_f1, val_logits=best_logits)


def estimate_finetune_seconds(hp: Hyperparameters, labels: list[str], split: Split) -> float:
    """The planned epochs' batches and validation passes, timed from one measured training
    step and one forward pass (after a warm-up) and scaled by the tokens each batch pads
    to: timing the first batch alone misjudged short texts of uneven length 2.5x (SMS)."""
    import torch

    options = read_options(FinetuneOptions, hp)
    classifier, seqs, targets, trainable = _prepared(hp, labels, split, options)
    model = classifier.model
    device = next(model.parameters()).device
    batch_size = options.batch_size
    order = list(range(len(seqs)))
    random.Random(hp.seed).shuffle(order)
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate)
    ids, mask = (t.to(device) for t in _batch([seqs[i] for i in batches[0]],
                                              classifier.tokenizer.pad_token_id or 0))  # fmt: skip
    target = targets[batches[0]].to(device)
    loss_fn = loss_function(targets, len(labels)).to(device)
    step = forward = 0.0
    for _ in range(2):  # the first step warms up (allocations), the second is timed
        started = time.monotonic()
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss: Any = loss_fn(logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        step = time.monotonic() - started
        started = time.monotonic()
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask)
        synchronize(device)
        forward = time.monotonic() - started
    epoch_tokens = sum(len(batch) * max(len(seqs[i]) for i in batch) for batch in batches)
    epochs = planned_epochs(options, len(batches))
    # Every epoch also reads every validation window (sorted by length: little padding).
    windows, _ = classifier.windows([d.text for d in split.validation])
    val_tokens = sum(len(w) for w in windows)
    timed = epochs * (epoch_tokens * step + val_tokens * forward) / ids.numel()
    return FINETUNE_OVERHEAD * timed


class _Trainer(KindTrainer):
    def __init__(self, data: SelectionData) -> None:
        self.data = data

    def fit(self, hp: Hyperparameters) -> Fitted:
        from training_job.split import Split

        data = self.data
        scored = self._by_folds(hp) if data.cross_validated else None
        if scored is None:  # calibrated on validation by fine_tune
            outcome = fine_tune(hp, data.labels, data.split, data.on_epoch, data.on_step)
            details = {"calibration_documents": float(len(data.split.validation))}
            held = HeldOut(data.val_rows, outcome.val_logits)
            return Fitted(outcome.classifier, outcome.val_f1, details, held)
        f1, out_of_fold, folds = scored
        # Served: trained as each fold was (its planned epochs), on every document; a
        # handful of validation documents must neither pick its epoch nor set its
        # temperature: the folds' scores do.
        everything = Split(data.split.train + data.split.validation, [], [])
        outcome = fine_tune(hp, data.labels, everything, data.on_epoch, data.on_step,
                            "all documents: ")  # fmt: skip
        classifier = outcome.classifier
        classifier.config = calibrate(classifier.config, out_of_fold, data.truth)
        details = {"folds": folds, "calibration_documents": len(data.docs)}
        rows = list(range(len(data.docs)))
        return Fitted(classifier, f1, details, HeldOut(rows, out_of_fold))

    def measure_cost(self) -> float:
        """One measured step times the planned steps, once more per fold when scored by
        folds (a small validation set)."""
        data = self.data
        fits = FINETUNE_CV_FOLDS + 1 if data.cross_validated else 1
        return estimate_finetune_seconds(data.hp, data.labels, data.split) * fits

    def _by_folds(self, hp: Hyperparameters) -> tuple[float, np.ndarray, int] | None:
        """Mean held-out macro-F1 of fine-tuning over stratified folds of train+validation,
        the out-of-fold logits and the number of folds (None: a label has one document)."""
        from sklearn.model_selection import StratifiedKFold

        from training_job.split import Split

        docs, strata = self.data.docs, self.data.strata
        folds = min(FINETUNE_CV_FOLDS, min(Counter(strata.tolist()).values()))
        if folds < 2:  # a label with one document: nothing to hold out
            return None
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=hp.seed)
        scores = []
        out_of_fold = np.zeros((len(docs), len(self.data.labels)))
        split = splitter.split(np.zeros(len(docs)), strata)
        for index, (fit_rows, held_rows) in enumerate(split, start=1):
            fold = Split([docs[i] for i in fit_rows], [], [])
            outcome = fine_tune(hp, self.data.labels, fold, lambda e, m: None,
                                self.data.on_step, f"fold {index} of {folds}: ")  # fmt: skip
            held = [docs[i] for i in held_rows]
            logits, _, f1 = validation_logits(outcome.classifier, held, self.data.labels)
            scores.append(f1)
            out_of_fold[held_rows] = logits
        return float(np.mean(scores)), out_of_fold, folds


class Finetune(ModelKind):
    name = "finetune"
    summary = "the whole MiniLM encoder fine-tuned; the strongest with 20+ documents a label"
    options = FinetuneOptions
    space = {
        "learning_rate": Search(1e-5, 3e-4, log=True),
        "epochs": Search(1, 4, integer=True),
    }

    def unsuited(self, hp: Hyperparameters, split: Split) -> str | None:
        # The average, not the smallest label: one rare label in a large dataset must not
        # rule fine-tuning out (it won by 9.5 points on an imbalanced 200/100/40/16/8 set).
        average = training_docs_per_label(split)
        if average < FEW_SHOT_DOCS:
            return (
                f"labels average {average:.0f} training documents (< {FEW_SHOT_DOCS}); "
                "fine-tuning does not pay off there"
            )
        return None

    def trainer(self, data: SelectionData) -> KindTrainer:
        return _Trainer(data)

    def load(self, folder: Path, config: ClassifierConfig) -> TextClassifier:
        if config.runtime:
            return OnnxWindowedClassifier.load(folder, config)
        return WindowedClassifier.load(folder)


KIND = Finetune()

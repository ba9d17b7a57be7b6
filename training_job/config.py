"""Job configuration: the SageMaker container contract plus typed hyperparameters.

SageMaker hands every hyperparameter over as a string, so each field is coerced from
text to its declared type here, once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from documents.extract import Limits

SM_PREFIX = "/opt/ml"


@dataclass(frozen=True)
class JobPaths:
    """Where the job reads its inputs and writes its outputs (SageMaker layout by default)."""

    hyperparameters: Path
    channel: Path
    model_dir: Path
    output_dir: Path
    # SageMaker's `shards` channel: the shard descriptors of a sharded batch job.
    shards: Path = Path("/opt/ml/input/data/shards")

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> JobPaths:
        env = dict(os.environ if env is None else env)
        root = Path(env.get("SM_ROOT", SM_PREFIX))
        return cls(
            hyperparameters=Path(
                env.get("SM_HP_FILE", root / "input" / "config" / "hyperparameters.json")
            ),
            channel=Path(env.get("SM_CHANNEL_TRAINING", root / "input" / "data" / "training")),
            model_dir=Path(env.get("SM_MODEL_DIR", root / "model")),
            output_dir=Path(env.get("SM_OUTPUT_DIR", root / "output")),
            shards=Path(env.get("SM_CHANNEL_SHARDS", root / "input" / "data" / "shards")),
        )


@dataclass(frozen=True)
class Hyperparameters:
    """Everything the API (or a user) can set for one training run."""

    # What to train on, and where to log.
    labels: list[str] = field(default_factory=list)
    data_uri: str = ""
    experiment_name: str = "custom-classifier"
    run_id: str = ""
    tracking_uri: str = ""
    registered_model_name: str = ""
    # Base encoder: a local folder, or a hub name where the deployment has a hub.
    base_model: str = ""
    # Which model: "auto" (the best candidate) or one kind of training_job/kinds.
    mode: str = "auto"
    # A document may carry several labels (filed under several label folders); every kind
    # then scores each label on its own, with a threshold per label.
    multi_label: bool = False
    # Between the labels of a multi-label CSV row (Comprehend's LabelDelimiter).
    label_delimiter: str = "|"
    # Seconds the whole job may take (0 = no limit); auto skips kinds that cannot fit.
    time_budget_seconds: float = 0.0
    # auto fits a kind only where the room left by the best score so far (1 - macro-F1, in
    # points) is at least this many points per estimated minute of its fit (0: every kind).
    min_gain_per_minute: float = 1.0
    # Optuna trials over the chosen candidate's main hyperparameters (0 = none).
    hpo_trials: int = 0
    # Windows: texts longer than max_length tokens are read as overlapping windows.
    max_length: int = 128
    window_overlap: int = 32
    max_windows: int = 32
    seed: int = 42
    # Data splitting and reading.
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_document_bytes: int = 10_485_760
    read_workers: int = 16
    # Reading PDF, DOCX, HTML and e-mail (documents/extract.py Limits; the service's settings).
    max_pdf_pages: int = Limits.max_pdf_pages
    max_unpacked_bytes: int = Limits.max_unpacked_bytes
    max_extracted_chars: int = Limits.max_extracted_chars
    # s3://bucket/prefix keeping extracted texts by content hash ("" = extract every time).
    extraction_cache_uri: str = ""
    # The evaluation bar for registration: this macro-F1, or where none is given, the share
    # `min_gain_over_chance` of the way from chance (answering at the labels' rates) to 1:
    # 0.7 for two labels, 0.52 for five, 0.43 for twenty (one bar cannot suit 2 labels and 20).
    min_macro_f1: float | None = None
    min_gain_over_chance: float = 0.4
    # "always": a registered version becomes @champion; "if_better": only where it beats
    # the champion on the same held-out documents (training_job/promotion.py).
    promote: str = "always"
    num_threads: int = 0
    # Where torch trains: "auto" (a GPU where the machine has one), "cpu" or "cuda".
    device: str = "auto"
    # Each kind's own hyperparameters by name (declared in its module, e.g. `tfidf_c`).
    options: dict[str, Any] = field(default_factory=dict)

    def with_options(self, **values: Any) -> Hyperparameters:
        return dataclasses.replace(self, options={**self.options, **values})

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Hyperparameters:
        """Job fields by name; any other name must be a kind's option (checked here)."""
        from training_job import kinds

        names = kinds.option_names()
        if "options" in raw:
            raise ValueError("unknown hyperparameters: options (give each option by name)")
        hp = from_mapping(cls, {k: v for k, v in raw.items() if k not in names})
        hp = hp.with_options(**{k: v for k, v in raw.items() if k in names})
        kinds.option_values(hp)  # every option readable as its declared type, or ValueError
        return hp


T = TypeVar("T")


def from_mapping(cls: type[T], raw: dict[str, Any]) -> T:
    """Build a dataclass from a mapping whose values may be strings (SageMaker) or typed."""
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown hyperparameters: {', '.join(unknown)}")
    values = {name: _coerce(name, hints[name], raw[name]) for name in raw}
    return cls(**values)


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    text = str(annotation)
    try:
        if text.startswith("list"):
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, list):
                raise ValueError("expected a JSON list")
            return [str(item) for item in parsed]
        if annotation is int:
            return int(value)
        if annotation is float:
            return float(value)
        if annotation == float | None:  # "" or "none": not given
            return None if value is None or str(value).lower() in {"", "none"} else float(value)
        if annotation is bool:
            return str(value).lower() in {"1", "true", "yes"}
        return str(value)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"hyperparameter {name!r}: cannot read {value!r} ({exc})") from exc


def merged_parameters(paths: JobPaths, overrides: dict[str, str]) -> dict[str, Any]:
    """The hyperparameters file, SM_HPS, then command-line overrides (last wins)."""
    raw: dict[str, Any] = {}
    if paths.hyperparameters.is_file():
        raw.update(json.loads(paths.hyperparameters.read_text()))
    if os.environ.get("SM_HPS"):
        raw.update(json.loads(os.environ["SM_HPS"]))
    raw.update(overrides)
    return raw


def load_parameters(paths: JobPaths, overrides: dict[str, str], cls: type[T]) -> T:
    return from_mapping(cls, merged_parameters(paths, overrides))


def load_hyperparameters(paths: JobPaths, overrides: dict[str, str]) -> Hyperparameters:
    return Hyperparameters.from_mapping(merged_parameters(paths, overrides))


def parse_args(argv: list[str] | None) -> dict[str, str]:
    """`--name value` / `--name=value` overrides; SageMaker's leading `train` is skipped."""
    tokens = list(argv or [])
    if tokens and tokens[0] == "train":
        tokens = tokens[1:]
    overrides: dict[str, str] = {}
    key = None
    for token in tokens:
        if token.startswith("--"):
            if key is not None:
                raise ValueError(f"missing value for --{key}")
            name, sep, value = token[2:].partition("=")
            name = name.replace("-", "_")
            if sep:
                overrides[name] = value
            else:
                key = name
        elif key is not None:
            overrides[key] = token
            key = None
        else:
            raise ValueError(f"unexpected argument {token!r}")
    if key is not None:
        raise ValueError(f"missing value for --{key}")
    return overrides

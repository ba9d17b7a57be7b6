"""MLflow tag names shared with the training job (its own copy lives in training_job/tracking.py:
the two images share data, not code)."""

from __future__ import annotations

TAG_FAILURE = "custom_classifier.failure_reason"
# The job's progress (training_job/progress.py): its phase and what it is doing, with the
# metrics progress_percent and eta_seconds.
TAG_PHASE = "custom_classifier.phase"
TAG_PHASE_DETAIL = "custom_classifier.phase_detail"
METRIC_PERCENT = "progress_percent"
METRIC_ETA = "eta_seconds"
TAG_GATE = "custom_classifier.gate"
TAG_GATE_REASON = "custom_classifier.gate_reason"
TAG_REGISTERED = "custom_classifier.registered_model"
# The run's logged model (what registering it later reads), and the highest registration
# bar its estimate passes (absent: it does not clearly beat the majority class).
TAG_MODEL_URI = "custom_classifier.model_uri"
METRIC_PASSES_BAR_UP_TO = "passes_bar_up_to"
# `promote: if_better`: whether the new version took @champion, and the comparison.
TAG_PROMOTION = "custom_classifier.promotion"
TAG_MODEL_KIND = "custom_classifier.model_kind"
# What live traffic is compared with (JSON: method, threshold, reference, label_shares).
TAG_SCOPE = "custom_classifier.scope"
TAG_LAUNCHER = "custom_classifier.launcher"
TAG_DATA_URI = "custom_classifier.data_uri"
TAG_JOB_ID = "custom_classifier.job_id"
# The S3 manifest upload (bucket, key, etag) a run was started from.
TAG_TRIGGER = "custom_classifier.trigger"
# The tenant a run belongs to (functions/core/tenancy.py); absent without authentication.
TAG_TENANT = "custom_classifier.tenant"
# The (hashed, per tenant) Idempotency-Key of the /process request that opened the run.
TAG_IDEMPOTENCY = "custom_classifier.idempotency_key"
# Who cancelled a run, and why; the job then ends KILLED and registers nothing.
TAG_CANCELLED = "custom_classifier.cancelled"
# The registered model a run registers into (set when the run is opened).
TAG_MODEL_NAME = "custom_classifier.model_name"
# On a registered model: the id of the one experiment whose runs it holds.
TAG_MODEL_OWNER = "custom_classifier.experiment_id"

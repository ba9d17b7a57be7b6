"""Purge one soft-deleted experiment from MLflow's database: its runs, its logged models, its row.

`mlflow gc --experiment-ids X` also purges every other deleted run unless `--run-ids` is given
and every deleted logged model unless `--logged-model-ids` is, and neither option can name an
empty list: hard-deleting one experiment destroyed the soft-deleted runs of all the others. This
runs the routine behind `mlflow gc` with explicit (possibly empty) lists instead.

    CC_GC_BACKEND_STORE_URI=<db uri> python -m functions.adapters.mlflow_gc \
        <tracking uri> <experiment id> [<logged model id> ...]

The database URI comes by environment: it may hold a password, never a command line.
"""

from __future__ import annotations

import os
import sys

BACKEND_ENV = "CC_GC_BACKEND_STORE_URI"


def purge(backend_store_uri: str, tracking_uri: str, experiment_id: str,
          logged_model_ids: list[str]) -> None:  # fmt: skip
    from mlflow.cli import _gc_tracking_resources
    from mlflow.tracking import _get_store, set_tracking_uri

    set_tracking_uri(tracking_uri)  # artifacts are removed through the server's proxy
    _gc_tracking_resources(
        backend_store=_get_store(backend_store_uri),  # type: ignore[no-untyped-call]
        run_ids=[],  # not None: None means every deleted run of every experiment
        experiment_ids=[experiment_id],  # adds this experiment's (deleted) runs, and its row
        logged_model_ids=logged_model_ids,
        older_than=None,
        time_delta=0,
        skip_experiments=False,
        skip_logged_models=False,
    )


if __name__ == "__main__":
    tracking, experiment, *models = sys.argv[1:]
    purge(os.environ[BACKEND_ENV], tracking, experiment, models)

"""JobLauncher on ECS Fargate: the training image as a one-off task, for accounts without
SageMaker training quotas.

A task carries its job name in `startedBy`; a launch first looks for a running (or, for a
job that is not restartable, a recently stopped) task of that name, and sends the name as
RunTask's `clientToken` so that two concurrent launches still start one task. A job over N
instances is N tasks, one RunTask each (a task's overrides carry its shard index).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.core.batch import SHARD_ENV
from functions.core.config import Settings
from functions.core.models import JobSpec, Launch

log = logging.getLogger(__name__)


def ecs_client(settings: Settings) -> Any:
    config = Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 3})
    return boto3.client("ecs", region_name=settings.aws_region, config=config)


class EcsLauncher:
    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        if not settings.ecs_cluster or not settings.ecs_task_definition or not settings.ecs_subnets:
            raise ValueError(
                "the ecs launcher needs CC_ECS_CLUSTER, CC_ECS_TASK_DEFINITION and CC_ECS_SUBNETS"
            )
        self.settings = settings
        self.client = client or ecs_client(settings)

    def request(self, spec: JobSpec, attempt: int, shard: int = 0) -> dict[str, Any]:
        """The RunTask request for a spec (attempt > 0 restarts a restartable job), for one
        shard of a job over several instances."""
        s = self.settings
        environment = {
            "SM_HPS": json.dumps(spec.hyperparameters),
            "MLFLOW_TRACKING_URI": s.mlflow_tracking_uri,
        }
        token = spec.job_name if attempt == 0 else f"{spec.job_name}-{attempt}"
        if spec.instances > 1:
            environment[SHARD_ENV] = str(shard)
            token = f"{token}-shard-{shard}"
        return {
            "cluster": s.ecs_cluster,
            "taskDefinition": s.ecs_task_definition,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": spec.job_name,
            "clientToken": token,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": s.ecs_subnets,
                    "securityGroups": s.ecs_security_groups,
                    "assignPublicIp": "ENABLED" if s.ecs_assign_public_ip else "DISABLED",
                }
            },
            "overrides": {
                "containerOverrides": [
                    {
                        "name": s.ecs_container_name,
                        "command": [spec.command],
                        "environment": [{"name": k, "value": v} for k, v in environment.items()],
                    }
                ]
            },
            "tags": [{"key": "custom-classifier:job", "value": spec.job_name}],
        }

    def _tasks(self, job_name: str, desired: str) -> list[str]:
        answer = self.client.list_tasks(
            cluster=self.settings.ecs_cluster, startedBy=job_name, desiredStatus=desired
        )
        return list(answer.get("taskArns", []))

    def launch(self, spec: JobSpec) -> Launch:
        running = self._tasks(spec.job_name, "RUNNING")
        if running:
            return Launch(running[0], created=False)
        stopped = self._tasks(spec.job_name, "STOPPED")
        if stopped and not spec.restartable:
            return Launch(stopped[0], created=False)
        arns = []
        for shard in range(spec.instances):
            request = self.request(spec, attempt=len(stopped), shard=shard)
            answer = self.client.run_task(**request)
            if not answer.get("tasks"):
                reasons = "; ".join(f.get("reason", "?") for f in answer.get("failures", []))
                raise RuntimeError(f"ECS did not start the task: {reasons or 'no reason given'}")
            arns.append(str(answer["tasks"][0]["taskArn"]))
        log.info("started ECS tasks %s for job %s", arns, spec.job_name)
        return Launch(arns[0])

    def queue_position(self, job_id: str) -> int | None:
        return None  # Fargate starts every task it accepts

    def cancel(self, job_id: str) -> None:
        """StopTask: ECS sends the container SIGTERM, then SIGKILL after its stop timeout."""
        self.client.stop_task(cluster=self.settings.ecs_cluster, task=job_id,
                              reason="cancelled through the custom classifier API")  # fmt: skip
        log.info("stopped ECS task %s", job_id)

    def failure(self, job_id: str) -> str | None:
        try:
            answer = self.client.describe_tasks(cluster=self.settings.ecs_cluster, tasks=[job_id])
        except (ClientError, BotoCoreError) as exc:  # unreachable now: not a job failure
            log.warning("describe_tasks %s: %s", job_id, exc)
            return None
        if not answer.get("tasks"):
            return f"ECS no longer knows task {job_id}; it ended without reporting"
        task = answer["tasks"][0]
        if task.get("lastStatus") != "STOPPED":
            return None
        codes = [c.get("exitCode") for c in task.get("containers", [])]
        if codes and all(code == 0 for code in codes):
            return None
        reason = task.get("stoppedReason") or task.get("stopCode") or "no reason given"
        return f"ECS task {job_id} stopped (exit codes {codes}): {reason}"

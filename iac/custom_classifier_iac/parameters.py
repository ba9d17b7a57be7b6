"""The SSM parameters this app publishes, by the setting (CC_* variable) each one feeds.

template.yaml reads the same names as `AWS::SSM::Parameter::Value<...>` parameters, and a
test checks both files against the service's Settings class.
"""

from __future__ import annotations

PREFIX = "/custom-classifier"

SETTING_PARAMETERS: dict[str, str] = {
    "CC_DATA_BUCKET": f"{PREFIX}/data-bucket",
    "CC_ARTIFACTS_BUCKET": f"{PREFIX}/artifacts-bucket",
    "CC_MLFLOW_TRACKING_URI": f"{PREFIX}/mlflow-tracking-uri",
    "CC_TRAINING_IMAGE_URI": f"{PREFIX}/training-image-uri",
    "CC_SAGEMAKER_ROLE_ARN": f"{PREFIX}/sagemaker-role-arn",
    "CC_SAGEMAKER_SUBNETS": f"{PREFIX}/private-subnets",
    "CC_SAGEMAKER_SECURITY_GROUPS": f"{PREFIX}/jobs-security-group",
    "CC_ECS_CLUSTER": f"{PREFIX}/ecs-cluster",
    "CC_ECS_TASK_DEFINITION": f"{PREFIX}/ecs-task-definition",
    "CC_ECS_SUBNETS": f"{PREFIX}/private-subnets",
    "CC_ECS_SECURITY_GROUPS": f"{PREFIX}/jobs-security-group",
}
# Parameters for the deployment itself rather than for a setting.
MANIFEST_QUEUE_ARN = f"{PREFIX}/manifest-queue-arn"
TASK_ROLE_ARNS = f"{PREFIX}/ecs-task-role-arns"
API_REPOSITORY_URI = f"{PREFIX}/api-repository-uri"

"""CDK app: `cdk deploy` (from iac/) creates Custom Classifier's long-lived resources.

Deploy this first; then `sam build && sam deploy` at the project root deploys the functions,
which read what this app created through SSM parameters (custom_classifier_iac/parameters.py).
"""

from __future__ import annotations

import aws_cdk as cdk
from custom_classifier_iac.stack import CustomClassifierStack

app = cdk.App()
CustomClassifierStack(
    app,
    app.node.try_get_context("stack_name") or "CustomClassifier",
    description="Custom Classifier: buckets, manifest queue, MLflow, job roles, ECR, SSM",
)
app.synth()

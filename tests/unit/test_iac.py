"""The deployment as code: template.yaml (SAM) and the CDK app in iac/, checked offline.

cfn-lint validates the SAM template (transform included); the CDK app is synthesised with
the pinned CDK CLI and its CloudFormation asserted on; both are held to the Settings class
and to each other through the SSM parameters that connect them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from functions.core.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
IAC = ROOT / "iac"
sys.path.insert(0, str(IAC))

from custom_classifier_iac.parameters import SETTING_PARAMETERS  # noqa: E402

SETTING_NAMES = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
SSM_TYPES = ("AWS::SSM::Parameter::Value<String>", "AWS::SSM::Parameter::Value<List<String>>")


def _sam() -> dict[str, Any]:
    template, matches = decode_str((ROOT / "template.yaml").read_text())
    assert not matches, matches
    return dict(template)


def _environment(template: dict[str, Any]) -> dict[str, Any]:
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            variables.update(own)
    return variables


def _referenced(value: Any) -> set[str]:
    """The parameters a value refers to (!Ref, possibly inside !Join or !Sub)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return {value["Ref"]}
        return set().union(*(_referenced(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_referenced(v) for v in value)) if value else set()
    return set()


def test_sam_template_passes_cfn_lint() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(ROOT / "template.yaml")], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_environment_names_are_settings_and_ssm_names_match_the_cdk_app() -> None:
    template = _sam()
    variables = _environment(template)
    assert set(variables) <= SETTING_NAMES, set(variables) - SETTING_NAMES
    parameters = template["Parameters"]
    for name, value in variables.items():
        for ref in _referenced(value):
            declared = parameters.get(ref)
            if declared and declared["Type"] in SSM_TYPES:
                assert SETTING_PARAMETERS.get(name) == declared["Default"], (name, ref)


def test_cdk_parameters_feed_settings() -> None:
    assert set(SETTING_PARAMETERS) <= SETTING_NAMES, set(SETTING_PARAMETERS) - SETTING_NAMES


def test_functions_may_read_only_the_data_bucket_and_write_only_artifacts() -> None:
    resources = _sam()["Resources"]
    for name in ("ApiFunction", "PredictFunction", "TriggerFunction"):
        policies = resources[name]["Properties"]["Policies"]
        reads = [p["S3ReadPolicy"]["BucketName"] for p in policies if "S3ReadPolicy" in p]
        writes = [p["S3CrudPolicy"]["BucketName"] for p in policies if "S3CrudPolicy" in p]
        assert reads == [{"Ref": "DataBucketName"}], name
        assert writes in ([], [{"Ref": "ArtifactsBucketName"}]), name
    trigger = resources["TriggerFunction"]["Properties"]["Policies"]
    puts = [s for p in trigger if "Statement" in p for s in p["Statement"]]
    assert [s["Action"] for s in puts] == ["s3:PutObject"]
    assert puts[0]["Resource"]["Fn::Sub"].endswith("/*_train.result.json")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cdk = ROOT / ".local" / "node" / "node_modules" / ".bin" / "cdk"
    if not cdk.exists():
        npm = shutil.which("npm")
        assert npm, "the CDK CLI needs npm (make install puts aws-cdk in .local/node)"
        subprocess.run([npm, "install", "--prefix", str(ROOT / ".local" / "node"),
                        "--no-audit", "--no-fund", "aws-cdk@2.1148.1"], check=True)  # fmt: skip
    out = tmp_path_factory.mktemp("cdk.out")
    result = subprocess.run(
        [str(cdk), "synth", "--app", f"{sys.executable} app.py", "-o", str(out), "-q",
         "--no-notices", "--no-version-reporting"],
        cwd=IAC, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dict(json.loads((out / "CustomClassifier.template.json").read_text()))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cdk_buckets_are_encrypted_versioned_private_and_tls_only(
    synthesized: dict[str, Any],
) -> None:
    buckets = _of_type(synthesized, "AWS::S3::Bucket")
    assert len(buckets) == 2
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
        assert bucket["DeletionPolicy"] == "Retain"
    # extracted document texts (the training cache) expire; nothing else does
    rules = {name: [r for r in b["Properties"]["LifecycleConfiguration"]["Rules"]
                    if "ExpirationInDays" in r] for name, b in buckets.items()}  # fmt: skip
    expiring = {name: r for name, r in rules.items() if r}
    assert len(expiring) == 1 and next(iter(expiring)).startswith("ArtifactsBucket")
    [rule] = next(iter(expiring.values()))
    assert (rule["Prefix"], rule["ExpirationInDays"]) == ("extracted/", 30)
    denies = [
        s
        for policy in _of_type(synthesized, "AWS::S3::BucketPolicy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
    ]
    assert len(denies) == 2
    assert all(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in _of_type(template, kind).values():
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_no_policy_grants_every_s3_action_on_every_resource(synthesized: dict[str, Any]) -> None:
    for statement in _statements(synthesized):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]  # fmt: skip
        resources = statement["Resource"]
        everything = resources == "*" or (isinstance(resources, list) and "*" in resources)
        assert not ("s3:*" in actions and everything), statement
        assert "*" not in actions, statement


def test_cdk_publishes_every_parameter_the_sam_template_reads(
    synthesized: dict[str, Any],
) -> None:
    published = {
        p["Properties"]["Name"] for p in _of_type(synthesized, "AWS::SSM::Parameter").values()
    }
    assert set(SETTING_PARAMETERS.values()) <= published
    wanted = {p["Default"] for p in _sam()["Parameters"].values() if p["Type"] in SSM_TYPES}
    assert wanted <= published, wanted - published


def test_cdk_manifest_uploads_reach_the_queue_with_a_dead_letter_queue(
    synthesized: dict[str, Any],
) -> None:
    notifications = _of_type(synthesized, "Custom::S3BucketNotifications")
    (config,) = [n["Properties"]["NotificationConfiguration"] for n in notifications.values()]
    (queue,) = config["QueueConfigurations"]
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    assert queue["Filter"]["Key"]["FilterRules"] == [{"Name": "suffix", "Value": "_train.json"}]
    queues = _of_type(synthesized, "AWS::SQS::Queue")
    assert any("RedrivePolicy" in q["Properties"] for q in queues.values())


def test_cdk_creates_mlflow_on_rds_unless_one_is_given(synthesized: dict[str, Any]) -> None:
    (database,) = _of_type(synthesized, "AWS::RDS::DBInstance").values()
    assert database["Properties"]["StorageEncrypted"] is True
    assert database["Properties"]["Engine"] == "postgres"
    balancers = _of_type(synthesized, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert [b["Properties"]["Scheme"] for b in balancers.values()] == ["internal"]

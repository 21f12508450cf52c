"""``infra/template.yaml``: generated from ``handlers.dispatch._resources``, committed, equal to the generator's
output, in agreement with ``aws init`` on every key, index, TTL and queue setting, least-privilege, and clean under
cfn-lint (offline; plain CloudFormation, so no SAM translator step is needed)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers.deploy._template import FUNCTIONS, SECRETS, build_template, render_yaml
from handlers.dispatch._resources import (
    DLQ_RETENTION_S,
    INPUT_PREFIX,
    MAX_RECEIVE_COUNT,
    MESSAGE_RETENTION_S,
    QUEUE_FUNCTION_TIMEOUT_S,
    VISIBILITY_TIMEOUT_S,
    bucket_definition,
    queue_attributes,
    table_definition,
    ttl_definition,
)
from tests.conftest import REPO

TEMPLATE_FILE = REPO / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return build_template()


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_the_committed_template_is_the_generated_one(template: dict[str, Any]) -> None:
    committed = TEMPLATE_FILE.read_text()
    assert committed == render_yaml(template), (
        "infra/template.yaml is stale: run `comfy-relay deploy template > infra/template.yaml`"
    )
    assert yaml.safe_load(committed) == template


def test_the_table_matches_aws_init_key_for_key(template: dict[str, Any]) -> None:
    (table,) = resources(template, "AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    expected = table_definition("x")
    del expected["TableName"]
    for key, value in expected.items():
        assert properties[key] == value, key
    assert properties["TimeToLiveSpecification"] == ttl_definition("x")["TimeToLiveSpecification"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert table["DeletionPolicy"] == "Retain"


def test_the_queues_match_aws_init(template: dict[str, Any]) -> None:
    queue = template["Resources"]["JobQueue"]["Properties"]
    dlq = template["Resources"]["DeadLetterQueue"]["Properties"]
    init = queue_attributes("arn:dlq")
    assert str(queue["VisibilityTimeout"]) == init["VisibilityTimeout"] == str(VISIBILITY_TIMEOUT_S)
    assert str(queue["MessageRetentionPeriod"]) == init["MessageRetentionPeriod"] == str(MESSAGE_RETENTION_S)
    redrive = json.loads(init["RedrivePolicy"])
    assert str(queue["RedrivePolicy"]["maxReceiveCount"]) == redrive["maxReceiveCount"] == str(MAX_RECEIVE_COUNT)
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert str(dlq["MessageRetentionPeriod"]) == queue_attributes(None)["MessageRetentionPeriod"]
    assert dlq["MessageRetentionPeriod"] == DLQ_RETENTION_S
    queue_function = template["Resources"]["QueueFunction"]["Properties"]
    assert queue_function["Timeout"] == QUEUE_FUNCTION_TIMEOUT_S
    assert queue["VisibilityTimeout"] >= 6 * queue_function["Timeout"]


def test_the_bucket_matches_aws_init_and_adds_what_a_real_account_needs(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["OutputBucket"]["Properties"]
    expected = bucket_definition("x")
    assert bucket["PublicAccessBlockConfiguration"] == expected["PublicAccessBlockConfiguration"]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    for rule in expected["LifecycleConfiguration"]["Rules"]:
        assert rules[rule["ID"]]["Prefix"] == rule["Filter"]["Prefix"] == INPUT_PREFIX
        assert rules[rule["ID"]]["ExpirationInDays"] == rule["Expiration"]["Days"]
        assert rules[rule["ID"]]["AbortIncompleteMultipartUpload"] == rule["AbortIncompleteMultipartUpload"]
    outputs = rules["worker-outputs"]
    assert outputs["ExpirationInDays"] == {"Ref": "OutputRetentionDays"}
    assert outputs["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    (statement,) = template["Resources"]["OutputBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_three_functions_and_their_triggers(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    assert {f["Properties"]["Handler"] for f in functions.values()} == {
        "handlers.dispatch.on_queue",
        "handlers.dispatch.on_webhook",
        "handlers.dispatch.reconcile",
    }
    (mapping,) = resources(template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["BatchSize"] == {"Ref": "BatchSize"}
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}
    (url,) = resources(template, "AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "NONE"  # the token check is in on_webhook
    (rule,) = resources(template, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["ReconcileFunction", "Arn"]}


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return [s for s in policy["PolicyDocument"]["Statement"] if "Fn::If" not in s]


def test_iam_is_least_privilege(template: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        statements = _statements(template, f"{function.logical}Role")
        actions = [a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
        assert not [a for a in actions if "*" in a], actions
        assert not [s for s in statements if s["Resource"] == "*"]
        assert not {"dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "s3:DeleteObject"} & set(actions)
        receives = "sqs:ReceiveMessage" in actions
        writes_inputs = "s3:PutObject" in actions
        assert receives == writes_inputs == (function.logical == "QueueFunction")
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmDescription"], name


def test_secrets_come_by_reference_never_as_parameters_or_values(template: dict[str, Any]) -> None:
    for name in template["Parameters"]:
        if name != "ArtifactKey":  # an S3 object key
            assert not any(word in name.lower() for word in ("key", "token", "secret", "password")), name
    for function in FUNCTIONS:
        variables = template["Resources"][function.logical]["Properties"]["Environment"]["Variables"]
        for setting, logical in {v: k for k, v in SECRETS.items()}.items():
            assert setting not in variables
            assert variables[f"{setting}_SECRET"] == {"Ref": logical}
        assert "RELAY_WEBHOOK_URL" not in variables
        assert "RELAY_WEBHOOK_URL_PARAMETER" in variables
    for logical in SECRETS:
        assert "GenerateSecretString" in template["Resources"][logical]["Properties"]


def test_alarms_and_outputs(template: dict[str, Any]) -> None:
    metrics = {a["Properties"]["MetricName"] for a in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert metrics == {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Errors"}
    assert len(resources(template, "AWS::CloudWatch::Alarm")) == 2 + len(FUNCTIONS)
    assert {"QueueUrl", "WebhookUrl", "BucketName", "TableName", "DeadLetterQueueUrl"} <= set(template["Outputs"])


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    # cfn-lint works offline (its specs ship in the wheel); a tight timeout keeps a hang from stalling CI.
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cfnlint.runner; sys.exit(cfnlint.runner.main())",
            "--format",
            "parseable",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_cfn_lint_finds_nothing_in_the_committed_template() -> None:
    result = _cfn_lint(TEMPLATE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_queue_that_would_hide_messages_from_a_slow_function(
    template: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(template)
    broken["Resources"]["JobQueue"]["Properties"]["VisibilityTimeout"] = 30  # below the function's 60 s
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = _cfn_lint(path)
    assert result.returncode != 0
    assert "E3505" in result.stdout, result.stdout

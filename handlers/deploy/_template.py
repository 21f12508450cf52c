"""The AWS stack as a plain CloudFormation template, generated from ``handlers.dispatch._resources`` so that the
deployed stack and ``comfy-relay aws init`` never drift apart. Pure data: no boto3, no YAML library needed here.

Plain CloudFormation rather than SAM: the template is derived from the same definitions as ``aws init``, deploys
with change sets and nothing else (no transform, no ``sam`` CLI, no managed policy templates, which are wider than
these functions need), and moto's CloudFormation can run it (it cannot run the SAM transform).
"""

from __future__ import annotations

import json
from typing import Any, Final

from handlers.dispatch._resources import (
    DLQ_RETENTION_S,
    INPUT_PREFIX,
    MAX_RECEIVE_COUNT,
    MESSAGE_RETENTION_S,
    QUEUE_FUNCTION_TIMEOUT_S,
    VISIBILITY_TIMEOUT_S,
    bucket_definition,
    table_definition,
    ttl_definition,
)

__all__ = [
    "FUNCTIONS",
    "LAMBDA_ARCHITECTURE",
    "LAMBDA_RUNTIME",
    "SECRETS",
    "Function",
    "build_template",
    "render_json",
    "render_yaml",
    "secret_name",
]

#: The artifact is built for this runtime and architecture (``comfy-relay deploy package``).
LAMBDA_RUNTIME: Final = "python3.11"
LAMBDA_ARCHITECTURE: Final = "x86_64"

#: Logical id of each secret → the dispatch setting it feeds (read as ``<NAME>_SECRET`` at cold start).
SECRETS: Final = {
    "RunPodApiKeySecret": "RUNPOD_API_KEY",
    "WebhookTokenSecret": "RELAY_WEBHOOK_TOKEN",
    "ProgressSecret": "RELAY_PROGRESS_SECRET",
    "ApiTokenSecret": "RELAY_API_TOKEN",
}


class Function:
    """One dispatch Lambda: its logical id prefix, entry point, timeout and memory."""

    def __init__(self, logical: str, suffix: str, handler: str, timeout_s: int, memory_mb: int) -> None:
        self.logical = logical
        self.suffix = suffix
        self.handler = handler
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb


FUNCTIONS: Final = (
    Function("QueueFunction", "on-queue", "handlers.dispatch.on_queue", QUEUE_FUNCTION_TIMEOUT_S, 512),
    Function("WebhookFunction", "on-webhook", "handlers.dispatch.on_webhook", 30, 512),
    # A pass every 5 minutes must end before the next one starts.
    Function("ReconcileFunction", "reconcile", "handlers.dispatch.reconcile", 240, 512),
)
_LOG_RETENTION_DAYS: Final = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653]


def _ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def _att(name: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [name, attribute]}


def _sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": text}


def _parameters() -> dict[str, Any]:
    return {
        "RunPodEndpointId": {
            "Type": "String",
            "Description": "The RunPod serverless endpoint jobs go to (comfy-relay deploy runpod prints it).",
            "AllowedPattern": "^[A-Za-z0-9_-]{1,64}$",
        },
        "ArtifactBucket": {"Type": "String", "Description": "Bucket holding the Lambda package (set by deploy)."},
        "ArtifactKey": {"Type": "String", "Description": "Key of the Lambda package (content-addressed)."},
        "BatchSize": {
            "Type": "Number",
            "Default": 10,
            "MinValue": 1,
            "MaxValue": 10,
            "Description": "SQS messages per on_queue invocation.",
        },
        "MaxConcurrency": {
            "Type": "Number",
            "Default": 5,
            "MinValue": 2,
            "MaxValue": 1000,
            "Description": "Concurrent on_queue invocations at most (caps the pressure on RunPod's /run).",
        },
        "OutputRetentionDays": {
            "Type": "Number",
            "Default": 30,
            "MinValue": 1,
            "Description": "Days before worker outputs under OutputPrefix expire.",
        },
        "OutputPrefix": {
            "Type": "String",
            "Default": "outputs/",
            "AllowedPattern": "^[a-z0-9][a-z0-9/_-]*/$",
            "Description": "Key prefix of worker outputs (the worker's RELAY_S3_PREFIX).",
        },
        "ReconcileSchedule": {
            "Type": "String",
            "Default": "rate(5 minutes)",
            "Description": "How often the reconciler runs (well inside RunPod's 30-minute result retention).",
        },
        "OldestMessageAlarmSeconds": {
            "Type": "Number",
            "Default": 900,
            "MinValue": 60,
            "Description": "Alarm when the oldest queued message is older than this.",
        },
        "LogRetentionDays": {"Type": "Number", "Default": 30, "AllowedValues": _LOG_RETENTION_DAYS},
        "AlarmTopicArn": {
            "Type": "String",
            "Default": "",
            "Description": "SNS topic for alarm notifications (empty: alarms without actions).",
        },
        "NotifyQueueArns": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "SQS queues callers may name as notify.sqs_queue_url (empty: none).",
        },
    }


def _queues() -> dict[str, Any]:
    return {
        "DeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"MessageRetentionPeriod": DLQ_RETENTION_S, "SqsManagedSseEnabled": True},
        },
        "JobQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": VISIBILITY_TIMEOUT_S,
                "MessageRetentionPeriod": MESSAGE_RETENTION_S,
                "RedrivePolicy": {
                    "deadLetterTargetArn": _att("DeadLetterQueue", "Arn"),
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                },
                "SqsManagedSseEnabled": True,
            },
        },
    }


def _table() -> dict[str, Any]:
    definition = table_definition("unused")
    del definition["TableName"]  # CloudFormation names it, so several stacks can share an account
    ttl = ttl_definition("unused")["TimeToLiveSpecification"]
    return {
        "JobsTable": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                **definition,
                "TimeToLiveSpecification": ttl,
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
        }
    }


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """``PutBucketLifecycleConfiguration`` rule → CloudFormation ``Rule``."""
    converted: dict[str, Any] = {"Id": rule["ID"], "Status": rule["Status"], "Prefix": rule["Filter"]["Prefix"]}
    if "Expiration" in rule:
        converted["ExpirationInDays"] = rule["Expiration"]["Days"]
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return converted


def _bucket() -> dict[str, Any]:
    definition = bucket_definition("unused")
    rules = [_lifecycle_rule(rule) for rule in definition["LifecycleConfiguration"]["Rules"]]
    rules.append(
        {
            "Id": "worker-outputs",
            "Status": "Enabled",
            "Prefix": _ref("OutputPrefix"),
            "ExpirationInDays": _ref("OutputRetentionDays"),
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    )
    return {
        "OutputBucket": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
                    ]
                },
                "PublicAccessBlockConfiguration": definition["PublicAccessBlockConfiguration"],
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {"Rules": rules},
            },
        },
        "OutputBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": _ref("OutputBucket"),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "TlsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [_att("OutputBucket", "Arn"), _sub("${OutputBucket.Arn}/*")],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                },
            },
        },
    }


def _secret_suffix(setting: str) -> str:
    return setting.lower().replace("_", "-")


def secret_name(stack_name: str, setting: str) -> str:
    """The Secrets Manager name the stack gives the secret that feeds ``setting``."""
    return f"{stack_name}/{_secret_suffix(setting)}"


def _secrets() -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for logical, setting in SECRETS.items():
        resources[logical] = {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {
                "Name": _sub("${AWS::StackName}/" + _secret_suffix(setting)),
                "Description": f"comfy-relay dispatch: {setting} (read once per Lambda cold start)",
                # Generated, so no secret ever passes through a parameter; deploy puts the RunPod key in.
                "GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True},
            },
        }
    resources["WebhookUrlParameter"] = {
        "Type": "AWS::SSM::Parameter",
        "Properties": {
            # A parameter, not an environment variable: the webhook function cannot name its own URL.
            "Name": _sub("/${AWS::StackName}/webhook-url"),
            "Type": "String",
            "Value": _att("WebhookFunctionUrl", "FunctionUrl"),
            "Description": "comfy-relay dispatch: the webhook Function URL (RELAY_WEBHOOK_URL)",
        },
    }
    return resources


def _assume_lambda() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def _function_statements(function: Function) -> list[dict[str, Any]]:
    table_arn = _att("JobsTable", "Arn")
    inputs = _sub("${OutputBucket.Arn}/" + INPUT_PREFIX + "*")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            # Named, not GetAtt: the group's name is fixed by the function's, and the policy needs no dependency.
            "Resource": _sub(
                "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-"
                + function.suffix
                + ":*"
            ),
        },
        {
            "Sid": "JobRecords",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
            "Resource": [table_arn, _sub("${JobsTable.Arn}/index/*")],
        },
        {
            "Sid": "JobInputs",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"] if function.logical == "QueueFunction" else ["s3:GetObject"],
            "Resource": inputs,
        },
        {
            "Sid": "Secrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": [_ref(logical) for logical in SECRETS],
        },
        {
            "Sid": "WebhookUrl",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": _sub(
                "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${AWS::StackName}/webhook-url"
            ),
        },
    ]
    if function.logical == "QueueFunction":
        statements.append(
            {
                "Sid": "JobQueue",
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                "Resource": _att("JobQueue", "Arn"),
            }
        )
    return statements


def _functions() -> dict[str, Any]:
    resources: dict[str, Any] = {}
    environment = {
        "RELAY_JOBS_TABLE": _ref("JobsTable"),
        "RELAY_S3_BUCKET": _ref("OutputBucket"),
        "RUNPOD_ENDPOINT_ID": _ref("RunPodEndpointId"),
        "RELAY_WEBHOOK_URL_PARAMETER": _sub("/${AWS::StackName}/webhook-url"),
        **{f"{setting}_SECRET": _ref(logical) for logical, setting in SECRETS.items()},
    }
    for function in FUNCTIONS:
        name = _sub("${AWS::StackName}-" + function.suffix)
        policy_statements = _function_statements(function)
        notify = {
            "Fn::If": [
                "HasNotifyQueues",
                {
                    "Sid": "NotifyQueues",
                    "Effect": "Allow",
                    "Action": "sqs:SendMessage",
                    "Resource": _ref("NotifyQueueArns"),
                },
                _ref("AWS::NoValue"),
            ]
        }
        resources[f"{function.logical}Logs"] = {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "LogGroupName": _sub("/aws/lambda/${AWS::StackName}-" + function.suffix),
                "RetentionInDays": _ref("LogRetentionDays"),
            },
        }
        resources[f"{function.logical}Role"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": _assume_lambda(),
                "Policies": [
                    {
                        "PolicyName": "dispatch",
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": [*policy_statements, notify]},
                    }
                ],
            },
        }
        resources[function.logical] = {
            "Type": "AWS::Lambda::Function",
            "DependsOn": [f"{function.logical}Logs"],
            "Properties": {
                "FunctionName": name,
                "Description": f"comfy-relay dispatch: {function.handler}",
                "Runtime": LAMBDA_RUNTIME,
                "Architectures": [LAMBDA_ARCHITECTURE],
                "Handler": function.handler,
                "Code": {"S3Bucket": _ref("ArtifactBucket"), "S3Key": _ref("ArtifactKey")},
                "MemorySize": function.memory_mb,
                "Timeout": function.timeout_s,
                "Role": _att(f"{function.logical}Role", "Arn"),
                "Environment": {"Variables": environment},
            },
        }
    resources["QueueEventSource"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "EventSourceArn": _att("JobQueue", "Arn"),
            "FunctionName": _ref("QueueFunction"),
            "BatchSize": _ref("BatchSize"),
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": _ref("MaxConcurrency")},
        },
    }
    resources["WebhookFunctionUrl"] = {
        "Type": "AWS::Lambda::Url",
        # NONE: RunPod's webhook is unsigned and cannot sign requests; the token check is in on_webhook.
        "Properties": {"TargetFunctionArn": _att("WebhookFunction", "Arn"), "AuthType": "NONE"},
    }
    resources["WebhookUrlPermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "FunctionName": _ref("WebhookFunction"),
            "Action": "lambda:InvokeFunctionUrl",
            "Principal": "*",
            "FunctionUrlAuthType": "NONE",
        },
    }
    resources["WebhookInvokePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "FunctionName": _ref("WebhookFunction"),
            "Action": "lambda:InvokeFunction",
            "Principal": "*",
            "InvokedViaFunctionUrl": True,
        },
    }
    resources["ReconcileRule"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Description": "comfy-relay: repair jobs that webhooks missed",
            "ScheduleExpression": _ref("ReconcileSchedule"),
            "State": "ENABLED",
            "Targets": [{"Id": "reconcile", "Arn": _att("ReconcileFunction", "Arn")}],
        },
    }
    resources["ReconcilePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "FunctionName": _ref("ReconcileFunction"),
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "SourceArn": _att("ReconcileRule", "Arn"),
        },
    }
    return resources


def _worker_user() -> dict[str, Any]:
    """The identity RunPod workers upload outputs with: put/get under the output prefix, nothing else. Its access
    key is created by hand (never a stack output) and stored as RunPod secrets."""
    return {
        "WorkerUser": {
            "Type": "AWS::IAM::User",
            "Properties": {
                "Policies": [
                    {
                        "PolicyName": "worker-outputs",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
                                    "Resource": _sub("${OutputBucket.Arn}/${OutputPrefix}*"),
                                }
                            ],
                        },
                    }
                ]
            },
        }
    }


def _alarm(description: str, metric: str, namespace: str, dimensions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    actions = {"Fn::If": ["HasAlarmTopic", [_ref("AlarmTopicArn")], _ref("AWS::NoValue")]}
    properties = {
        "AlarmDescription": description,
        "MetricName": metric,
        "Namespace": namespace,
        "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions.items()],
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "AlarmActions": actions,
        "OKActions": actions,
    }
    properties.update(extra)
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _alarms() -> dict[str, Any]:
    alarms = {
        "DeadLetterQueueAlarm": _alarm(
            "Messages that could not be handled after maxReceiveCount deliveries are waiting in the DLQ.",
            "ApproximateNumberOfMessagesVisible",
            "AWS/SQS",
            {"QueueName": _att("DeadLetterQueue", "QueueName")},
        ),
        "OldestMessageAlarm": _alarm(
            "The job queue is not being drained: its oldest message is older than OldestMessageAlarmSeconds.",
            "ApproximateAgeOfOldestMessage",
            "AWS/SQS",
            {"QueueName": _att("JobQueue", "QueueName")},
            Threshold=_ref("OldestMessageAlarmSeconds"),
            EvaluationPeriods=3,
        ),
    }
    for function in FUNCTIONS:
        alarms[f"{function.logical}ErrorsAlarm"] = _alarm(
            f"{function.handler} raised (crashed or timed out) in the last 5 minutes.",
            "Errors",
            "AWS/Lambda",
            {"FunctionName": _ref(function.logical)},
            Statistic="Sum",
            Period=300,
        )
    return alarms


def _outputs() -> dict[str, Any]:
    def output(description: str, value: Any) -> dict[str, Any]:
        return {"Description": description, "Value": value}

    return {
        "QueueUrl": output("Put job messages here (SQS SendMessage).", _ref("JobQueue")),
        "QueueArn": output("The job queue's ARN (for producers' IAM policies).", _att("JobQueue", "Arn")),
        "DeadLetterQueueUrl": output("Messages that failed maxReceiveCount times.", _ref("DeadLetterQueue")),
        "WebhookUrl": output(
            "Function URL: RunPod webhooks, progress events, GET /jobs/{job_id}.",
            _att("WebhookFunctionUrl", "FunctionUrl"),
        ),
        "BucketName": output("Output bucket (worker outputs and large job inputs).", _ref("OutputBucket")),
        "OutputPrefix": output("The worker's RELAY_S3_PREFIX.", _ref("OutputPrefix")),
        "TableName": output("Jobs table (RELAY_JOBS_TABLE).", _ref("JobsTable")),
        "ApiTokenSecretArn": output("Bearer token for GET /jobs/{job_id}.", _ref("ApiTokenSecret")),
        "ProgressSecretArn": output("The worker's progress-webhook HMAC secret.", _ref("ProgressSecret")),
        "RunPodApiKeySecretArn": output("The RunPod API key dispatch uses.", _ref("RunPodApiKeySecret")),
        "WorkerUserName": output("IAM user for the worker's S3 uploads.", _ref("WorkerUser")),
    }


def build_template() -> dict[str, Any]:
    """The whole stack; ``infra/template.yaml`` is this, rendered (a test keeps the two equal)."""
    resources: dict[str, Any] = {}
    for part in (_queues(), _table(), _bucket(), _secrets(), _functions(), _worker_user(), _alarms()):
        resources.update(part)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "comfy-relay dispatch: job queue + DLQ, jobs table, output bucket, three Lambda functions, "
        "secrets and alarms. Generated from handlers/dispatch/_resources.py; do not edit by hand.",
        "Parameters": _parameters(),
        "Conditions": {
            "HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [_ref("AlarmTopicArn"), ""]}]},
            "HasNotifyQueues": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", _ref("NotifyQueueArns")]}, ""]}]},
        },
        "Resources": resources,
        "Outputs": _outputs(),
    }


def render_json(template: dict[str, Any]) -> str:
    """Compact JSON: what ``deploy aws`` sends as the template body (CloudFormation's limit is 51,200 bytes)."""
    return json.dumps(template, separators=(",", ":"), sort_keys=True)


def render_yaml(template: dict[str, Any]) -> str:
    """The committed ``infra/template.yaml``: long-form intrinsics, no YAML aliases (CloudFormation rejects them).
    Needs PyYAML (a dev dependency, via cfn-lint); the deploy itself sends JSON."""
    import yaml  # noqa: PLC0415

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    header = "# Generated by `comfy-relay deploy template` from handlers/dispatch/_resources.py: do not edit.\n"
    body: str = yaml.dump(template, Dumper=_NoAliases, sort_keys=False, width=120, allow_unicode=True)
    return header + body

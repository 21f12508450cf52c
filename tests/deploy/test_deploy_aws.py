"""``comfy-relay deploy aws`` against moto in server mode: build and upload the package, create the stack through a
change set, drive the deployed resources with the local event-source loop (a message on the deployed queue ends as
a job record in the deployed table), then update the stack and deploy again.

moto's CloudFormation has no model for four of the template's resource types: ``AWS::Lambda::Url``,
``AWS::S3::BucketPolicy``, ``AWS::SecretsManager::Secret`` and ``AWS::CloudWatch::Alarm`` (it skips them and then
fails on any reference to them). The test deploys the generated template with those resources taken out and the
references to them replaced by what they would resolve to here: the secrets' names (the test creates the secrets in
moto's Secrets Manager, as the stack would) and the local Function URL listener's address. Everything else is
checked on the deployed resources. moto also never reports stack outputs for change-set deploys, and runs no
rollbacks: the outputs and the non-zero exit on rollback are tested against an in-memory CloudFormation
(``test_stack.py``). moto's own SQS → Lambda poller would try to run the function in Docker, so the test disables
the deployed event source mapping after checking it; the local event-source loop plays its part.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.cli import main
from handlers.deploy._package import Artifact
from handlers.deploy._template import SECRETS, build_template, secret_name
from handlers.dispatch._runtime import reset_runtime
from handlers.local._serving import ServerThread
from handlers.local.stack._event_loop import EventSources, LambdaFunctions
from tests.dispatch.conftest import API_TOKEN, PROGRESS_SECRET, REGION, WEBHOOK_TOKEN, aws_client, job_message
from tests.local.runpod.conftest import FAST_CONFIG, serve_emulator, wait_for

MOTO_LACKS = frozenset(
    {"AWS::Lambda::Url", "AWS::S3::BucketPolicy", "AWS::SecretsManager::Secret", "AWS::CloudWatch::Alarm"}
)


def for_moto(template: dict[str, Any], resolve: Callable[[str, str | None], str]) -> dict[str, Any]:
    """``template`` without the resources moto cannot create; ``Ref``/``Fn::GetAtt`` to them become
    ``resolve(logical_id, attribute)``."""
    adapted = copy.deepcopy(template)
    dropped = {name for name, r in adapted["Resources"].items() if r["Type"] in MOTO_LACKS}
    for name in dropped:
        del adapted["Resources"][name]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in dropped:
                return resolve(node["Ref"], None)
            if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in dropped:
                return resolve(node["Fn::GetAtt"][0], node["Fn::GetAtt"][1])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    adapted = walk(adapted)
    assert not [o for o, v in adapted["Outputs"].items() if "dropped" in json.dumps(v)]
    return adapted


def test_moto_lacks_exactly_the_types_this_test_works_around() -> None:
    from moto.cloudformation.parsing import get_model_map

    supported = set(get_model_map())
    used = {r["Type"] for r in build_template()["Resources"].values()}
    assert used - supported == MOTO_LACKS, "moto's CloudFormation support changed: update MOTO_LACKS"


class Cli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(["deploy", "aws", *args])
        captured = self.capsys.readouterr()
        return code, captured.out + captured.err


@contextlib.contextmanager
def function_url_listener(sources: EventSources) -> Iterator[str]:
    with ServerThread(sources.app) as server:
        yield server.url


def _physical(cf: Any, stack: str) -> dict[str, str]:
    summaries = cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries if s["LogicalResourceId"]}


def _handler(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_deploy_drive_update_and_redeploy(
    moto_endpoint: str,
    lambda_package: tuple[Artifact, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack = f"relay-{uuid.uuid4().hex[:8]}"
    aws_env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RUNPOD_API_KEY", FAST_CONFIG.api_key)
    cf, sqs, dynamodb, s3, lam, secrets, ssm = (
        aws_client(s, moto_endpoint)
        for s in ("cloudformation", "sqs", "dynamodb", "s3", "lambda", "secretsmanager", "ssm")
    )
    # What the stack's Secrets Manager resources would hold (moto cannot create them); deploy puts the RunPod key.
    values = {
        "RELAY_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RELAY_PROGRESS_SECRET": PROGRESS_SECRET,
        "RELAY_API_TOKEN": API_TOKEN,
    }
    for setting in SECRETS.values():
        secrets.create_secret(
            Name=secret_name(stack, setting), SecretString=values.get(setting, "generated-placeholder")
        )

    functions: dict[str, Any] = {}
    sources = EventSources(
        LambdaFunctions(
            on_queue=lambda e, c: functions["on_queue"](e, c),  # noqa: PLW0108  (bound after deploy)
            on_webhook=lambda e, c: functions["on_webhook"](e, c),  # noqa: PLW0108  (bound after deploy)
            reconcile=lambda e, c: functions["reconcile"](e, c),  # noqa: PLW0108  (bound after deploy)
        ),
        sqs=sqs,
        queue_url=None,
        region=REGION,
    )
    cli = Cli(monkeypatch, capsys)
    with serve_emulator(FAST_CONFIG) as emulator, function_url_listener(sources) as function_url:
        secret_logical = {logical: secret_name(stack, setting) for logical, setting in SECRETS.items()}

        def resolve(logical: str, attribute: str | None) -> str:
            return secret_logical.get(logical, f"{function_url}/")

        template_file = tmp_path / "template.json"
        template_file.write_text(json.dumps(for_moto(build_template(), resolve)))

        # ---- 1. create: builds and uploads the package, creates the stack through a change set
        code, out = cli("--stack-name", stack, "--runpod-endpoint-id", FAST_CONFIG.endpoint_id,
                        "--template", str(template_file), "--build-dir", str(tmp_path / "dist"))  # fmt: skip
        assert code == 0, out
        assert "Creating stack" in out and "Uploading Lambda package" in out and "CREATE_COMPLETE" in out
        assert f"RunPod API key stored in {secret_name(stack, 'RUNPOD_API_KEY')}" in out
        assert cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
        ids = _physical(cf, stack)
        _check_deployed_resources(ids, sqs, dynamodb, s3, lam, ssm, function_url)
        stored_key = secrets.get_secret_value(SecretId=secret_name(stack, "RUNPOD_API_KEY"))["SecretString"]
        assert stored_key == FAST_CONFIG.api_key

        # ---- 2. a message on the deployed queue ends as a job record in the deployed table
        (mapping,) = lam.list_event_source_mappings(FunctionName=ids["QueueFunction"])["EventSourceMappings"]
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)  # the local loop polls instead
        config = lam.get_function_configuration(FunctionName=ids["QueueFunction"])
        for name, value in {**config["Environment"]["Variables"], **aws_env}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RUNPOD_API_BASE", emulator.api_base)  # the real RunPod otherwise
        monkeypatch.delenv("RUNPOD_API_KEY")  # the deploy command's; the functions read the stack's secret
        for function in ("QueueFunction", "WebhookFunction", "ReconcileFunction"):
            handler = lam.get_function_configuration(FunctionName=ids[function])["Handler"]
            functions[handler.rpartition(".")[2]] = _handler(handler)
        reset_runtime()
        try:
            queue_url = sqs.get_queue_url(QueueName=ids["JobQueue"].rsplit("/", 1)[-1])["QueueUrl"]
            sources.queue_url = queue_url
            job_id = f"deployed-{uuid.uuid4().hex[:8]}"
            sqs.send_message(QueueUrl=queue_url, MessageBody=job_message(job_id))
            record = asyncio.run(_drive(sources, lambda: _record(dynamodb, ids["JobsTable"], job_id)))
            assert record["state"] == "SUBMITTED", record
            runpod_jobs = emulator.admin("jobs")["jobs"]
            assert [j for j in runpod_jobs if j["id"] == record["runpod_id"]], runpod_jobs
        finally:
            from handlers.dispatch._runtime import runtime

            runtime().service.runpod.close()  # type: ignore[attr-defined]
            reset_runtime()

        # ---- 3. update: a changed parameter, the same code (the rebuilt package is byte-identical)
        monkeypatch.setenv("RUNPOD_API_KEY", FAST_CONFIG.api_key)
        code, out = cli("--stack-name", stack, "--template", str(template_file), "--parameter", "BatchSize=5",
                        "--build-dir", str(tmp_path / "dist2"))  # fmt: skip
        assert code == 0, out
        assert "Updating stack" in out and "is already uploaded" in out and "UPDATE_COMPLETE" in out
        parameters = {
            p["ParameterKey"]: p.get("ParameterValue")
            for p in cf.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
        }
        assert parameters["BatchSize"] == "5"
        assert parameters["RunPodEndpointId"] == FAST_CONFIG.endpoint_id  # kept from the first deploy

        # ---- 4. deploy again with nothing changed
        artifact = next((tmp_path / "dist2").glob("*.zip"))
        code, out = cli("--stack-name", stack, "--template", str(template_file), "--parameter", "BatchSize=5",
                        "--artifact", str(artifact))  # fmt: skip
        assert code == 0, out
        assert "is already uploaded" in out and "RunPod API key in" in out and "unchanged" in out
        # AWS answers an identical update with an empty, FAILED change set ("didn't contain changes"), which deploy
        # reports as "No changes" (test_stack.py); moto creates and executes an empty one instead.
        assert "No changes" in out or "(the service listed no resource changes)" in out


async def _drive(sources: EventSources, found: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    stop = asyncio.Event()
    poller = asyncio.create_task(sources.poll_queue(stop))
    try:
        return await asyncio.to_thread(wait_for, found, 60.0, "the job record in the deployed table")
    finally:
        stop.set()
        await poller


def _record(dynamodb: Any, table: str, job_id: str) -> dict[str, Any] | None:
    item = dynamodb.get_item(TableName=table, Key={"job_id": {"S": job_id}}, ConsistentRead=True).get("Item")
    if item is None:
        return None
    record: dict[str, Any] = json.loads(item["record"]["S"])
    return record if record.get("state") == "SUBMITTED" else None


def _check_deployed_resources(  # noqa: PLR0917
    ids: dict[str, str], sqs: Any, dynamodb: Any, s3: Any, lam: Any, ssm: Any, function_url: str
) -> None:
    template = build_template()
    table = dynamodb.describe_table(TableName=ids["JobsTable"])["Table"]
    assert table["KeySchema"] == template["Resources"]["JobsTable"]["Properties"]["KeySchema"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"by-open-state", "by-runpod-id"}
    # moto's CloudFormation applies neither the table's TTL, point-in-time recovery and encryption nor the
    # bucket's public access block and lifecycle (its models read only some properties): test_template.py checks
    # those on the template itself.
    queue_url = sqs.get_queue_url(QueueName=ids["JobQueue"].rsplit("/", 1)[-1])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "360"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 5 and redrive["deadLetterTargetArn"].endswith(
        "DeadLetterQueue-" + redrive["deadLetterTargetArn"].rsplit("-", 1)[-1]
    )
    encryption = s3.get_bucket_encryption(Bucket=ids["OutputBucket"])["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    for function, handler, timeout in (
        ("QueueFunction", "handlers.dispatch.on_queue", 60),
        ("WebhookFunction", "handlers.dispatch.on_webhook", 30),
        ("ReconcileFunction", "handlers.dispatch.reconcile", 240),
    ):
        config = lam.get_function_configuration(FunctionName=ids[function])
        assert (config["Handler"], config["Timeout"], config["Runtime"]) == (handler, timeout, "python3.11")
        variables = config["Environment"]["Variables"]
        assert not {"RUNPOD_API_KEY", "RELAY_WEBHOOK_TOKEN", "RELAY_API_TOKEN", "RELAY_PROGRESS_SECRET"} & set(
            variables
        )
    (mapping,) = lam.list_event_source_mappings(FunctionName=ids["QueueFunction"])["EventSourceMappings"]
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    parameter = ssm.get_parameter(Name=ids["WebhookUrlParameter"])["Parameter"]["Value"]
    assert parameter == f"{function_url}/"

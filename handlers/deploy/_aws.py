"""``deploy aws``: upload the Lambda package (content-addressed, skipped when already there), deploy the stack
through a change set, and put the RunPod API key from the environment into the stack's secret."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from handlers.deploy._package import Artifact
from handlers.deploy._stack import Outcome, Say, Sleep, StackResult, deploy_stack
from handlers.deploy._template import render_json, secret_name

__all__ = ["default_artifact_bucket", "deploy_aws", "ensure_artifact"]


def default_artifact_bucket(session: Any) -> str:
    account = session.client("sts").get_caller_identity()["Account"]
    return f"comfy-relay-artifacts-{account}-{session.region_name}"


def _ensure_bucket(s3: Any, bucket: str, region: str | None, say: Say) -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    say(f"Creating artifact bucket {bucket}")
    if region in (None, "us-east-1"):
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def ensure_artifact(s3: Any, bucket: str, artifact: Artifact, say: Say) -> bool:
    """Upload unless an object with this content's key is there already. Returns whether it uploaded."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        s3.head_object(Bucket=bucket, Key=artifact.key)
        say(f"Lambda package s3://{bucket}/{artifact.key} is already uploaded")
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    say(f"Uploading Lambda package ({artifact.size_bytes / 1e6:.1f} MB) to s3://{bucket}/{artifact.key}")
    s3.upload_file(str(artifact.path), bucket, artifact.key, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    return True


def _store_runpod_key(session: Any, stack_name: str, api_key: str, say: Say) -> None:
    """Put the key into the stack's secret unless it holds it already (no new version on a redeploy)."""
    secrets = session.client("secretsmanager")
    name = secret_name(stack_name, "RUNPOD_API_KEY")
    current = secrets.get_secret_value(SecretId=name).get("SecretString")
    if current == api_key:
        say(f"RunPod API key in {name}: unchanged")
        return
    secrets.put_secret_value(SecretId=name, SecretString=api_key)
    say(f"RunPod API key stored in {name} (running functions pick it up at their next cold start)")


def deploy_aws(
    session: Any,
    *,
    stack_name: str,
    template: Mapping[str, Any],
    artifact: Artifact,
    parameters: Mapping[str, str],
    artifact_bucket: str | None = None,
    runpod_api_key: str | None = None,
    execute: bool = True,
    say: Say = print,
    sleep: Sleep = time.sleep,
) -> StackResult:
    s3 = session.client("s3")
    bucket = artifact_bucket or default_artifact_bucket(session)
    _ensure_bucket(s3, bucket, session.region_name, say)
    ensure_artifact(s3, bucket, artifact, say)
    result = deploy_stack(
        session.client("cloudformation"),
        stack_name=stack_name,
        template_body=render_json(dict(template)),
        declared=template["Parameters"],
        parameters={"ArtifactBucket": bucket, "ArtifactKey": artifact.key, **parameters},
        execute=execute,
        say=say,
        sleep=sleep,
    )
    if runpod_api_key and result.outcome in (Outcome.SUCCEEDED, Outcome.NO_CHANGES):
        _store_runpod_key(session, stack_name, runpod_api_key, say)
    return result

"""``comfy-relay deploy``: the AWS stack (``aws``), the RunPod template and endpoint (``runpod``), the Lambda
package alone (``package``) and the CloudFormation template (``template``). See ``infra/README.md``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

_PROG = "comfy-relay deploy"


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{_PROG}: {what} must be KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


# ------------------------------------------------------------------------------------------------------------ aws


def _load_template(path: str | None) -> dict[str, Any]:
    from handlers.deploy._template import build_template  # noqa: PLC0415

    if path is None:
        return build_template()
    text = Path(path).read_text()
    if text.lstrip().startswith("{"):
        loaded: dict[str, Any] = json.loads(text)
        return loaded
    import yaml  # noqa: PLC0415  (only for a YAML template given by hand)

    loaded = yaml.safe_load(text)
    return loaded


def _run_aws(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415

    from handlers.deploy._aws import deploy_aws  # noqa: PLC0415
    from handlers.deploy._package import Artifact, PackageError, build_artifact  # noqa: PLC0415
    from handlers.deploy._stack import DeployError  # noqa: PLC0415

    parameters = _pairs(args.parameter, "--parameter")
    if args.runpod_endpoint_id:
        parameters["RunPodEndpointId"] = args.runpod_endpoint_id
    try:
        template = _load_template(args.template)
        if args.artifact:
            import hashlib  # noqa: PLC0415

            path = Path(args.artifact)
            data = path.read_bytes()
            artifact = Artifact(path, hashlib.sha256(data).hexdigest(), len(data), 0, 0)
        else:
            print("Building the Lambda package ...", flush=True)
            artifact = build_artifact(Path(args.build_dir), source=args.source)
            print(f"Built {artifact.path} ({artifact.size_bytes / 1e6:.1f} MB, {artifact.files} files)", flush=True)
        result = deploy_aws(
            boto3.session.Session(),
            stack_name=args.stack_name,
            template=template,
            artifact=artifact,
            parameters=parameters,
            artifact_bucket=args.artifact_bucket,
            runpod_api_key=os.environ.get("RUNPOD_API_KEY") or None,
            execute=not args.no_execute,
            say=lambda line: print(line, flush=True),
        )
    except (DeployError, PackageError, OSError, ValueError) as exc:
        print(f"{_PROG} aws: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore's errors: one clear line, not a traceback
        if type(exc).__module__.startswith("botocore"):
            print(f"{_PROG} aws: {exc}", file=sys.stderr)
            return 1
        raise
    for line in result.failures:
        print(f"  FAILED {line}", file=sys.stderr)
    if args.json:
        sys.stdout.write(
            json.dumps({"outcome": result.outcome.value, "status": result.status, "outputs": result.outputs}, indent=2)
            + "\n"
        )
    elif result.outputs:
        print("Outputs:")
        for key, value in sorted(result.outputs.items()):
            print(f"  {key} = {value}")
    else:
        print("Outputs: (the stack reports none)")
    if not result.ok:
        print(f"{_PROG} aws: the stack {result.outcome.value} ({result.status})", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------------------- runpod


def _run_runpod(args: argparse.Namespace) -> int:
    from handlers.deploy._runpod import (  # noqa: PLC0415
        DEFAULT_REST_URL,
        EndpointSpec,
        RunPodRest,
        RunPodRestError,
        TemplateSpec,
        apply,
        plan,
    )

    api_key = os.environ.get("RUNPOD_API_KEY", "")
    if not api_key:
        print(f"{_PROG} runpod: RUNPOD_API_KEY is not set (it is read from the environment only)", file=sys.stderr)
        return 2
    template = TemplateSpec(
        name=args.template_name or f"{args.name}-template",
        image_name=args.image,
        container_disk_gb=args.container_disk,
        env=_pairs(args.env, "--env"),
        volume_mount_path=args.volume_mount_path,
        container_registry_auth_id=args.registry_auth_id,
    )
    endpoint = EndpointSpec(
        name=args.name,
        gpu_type_ids=args.gpu or ["NVIDIA GeForce RTX 4090"],
        gpu_count=args.gpu_count,
        workers_min=args.workers_min,
        workers_max=args.workers_max,
        idle_timeout_s=args.idle_timeout,
        flashboot=not args.no_flashboot,
        execution_timeout_ms=int(args.execution_timeout * 1000),
        scaler_type=args.scaler_type,
        scaler_value=args.scaler_value,
        network_volume_id=args.network_volume,
        data_center_ids=args.data_center or None,
    )
    if endpoint.workers_min > endpoint.workers_max:
        print(f"{_PROG} runpod: --workers-min must not exceed --workers-max", file=sys.stderr)
        return 2
    base_url = os.environ.get("RUNPOD_REST_URL") or DEFAULT_REST_URL
    try:
        with RunPodRest(base_url, api_key) as client:
            steps = plan(template, endpoint, templates=client.templates(), endpoints=client.endpoints())
            for line in steps.lines():
                print(line)
            if args.dry_run:
                print("Dry run: nothing was changed.")
                return 0
            template_id, endpoint_id = apply(steps, client)
    except RunPodRestError as exc:
        print(f"{_PROG} runpod: {exc}", file=sys.stderr)
        return 1
    if steps.changed:
        print(f"Applied: template {template_id}, endpoint {endpoint_id}")
    else:
        print(f"Unchanged: template {template_id}, endpoint {endpoint_id}")
    if args.json:
        sys.stdout.write(
            json.dumps({"template_id": template_id, "endpoint_id": endpoint_id, "changed": steps.changed}) + "\n"
        )
    else:
        print(f"export RUNPOD_ENDPOINT_ID={endpoint_id}")
    return 0


# ----------------------------------------------------------------------------------------------- package, template


def _run_package(args: argparse.Namespace) -> int:
    from handlers.deploy._package import PackageError, build_artifact  # noqa: PLC0415

    try:
        artifact = build_artifact(Path(args.out), source=args.source)
    except PackageError as exc:
        print(f"{_PROG} package: {exc}", file=sys.stderr)
        return 1
    summary = {
        "path": str(artifact.path),
        "sha256": artifact.sha256,
        "size_bytes": artifact.size_bytes,
        "unpacked_bytes": artifact.unpacked_bytes,
        "files": artifact.files,
    }
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


def _run_template(args: argparse.Namespace) -> int:
    from handlers.deploy._template import build_template, render_yaml  # noqa: PLC0415

    template = build_template()
    sys.stdout.write(json.dumps(template, indent=2) + "\n" if args.format == "json" else render_yaml(template))
    return 0


def register(commands: Any) -> None:
    deploy: argparse.ArgumentParser = commands.add_parser(
        "deploy", help="deploy the AWS stack and the RunPod endpoint (infra/README.md)"
    )
    targets = deploy.add_subparsers(dest="target", required=True, metavar="TARGET")

    aws = targets.add_parser(
        "aws",
        help="create or update the AWS stack through a change set",
        description="Build and upload the Lambda package, create a change set, show it, execute it, wait, and print "
        "the outputs. Exits non-zero when the stack rolls back. AWS credentials and region: boto3's usual "
        "variables. RUNPOD_API_KEY, when set, is stored in the stack's secret.",
    )
    aws.add_argument("--stack-name", required=True)
    aws.add_argument("--runpod-endpoint-id", help="shorthand for --parameter RunPodEndpointId=ID")
    aws.add_argument("--parameter", action="append", metavar="KEY=VALUE", help="a template parameter (repeatable)")
    aws.add_argument("--artifact-bucket", help="bucket for the Lambda package (default: one per account and region)")
    aws.add_argument("--artifact", metavar="ZIP", help="deploy this package instead of building one")
    aws.add_argument(
        "--source", choices=["env", "pip"], default="env", help="where the package's dependencies come from"
    )
    aws.add_argument("--build-dir", default="dist", help="where the package is built (default: dist)")
    aws.add_argument("--template", metavar="FILE", help="deploy this template instead of the generated one")
    aws.add_argument("--no-execute", action="store_true", help="create and show the change set, do not execute it")
    aws.add_argument("--json", action="store_true", help="print the outcome and outputs as JSON")
    aws.set_defaults(run=_run_aws)

    runpod = targets.add_parser(
        "runpod",
        help="create or update the RunPod serverless template and endpoint by name",
        description="Idempotent: compares what exists with what is asked and changes only the difference. "
        "RUNPOD_API_KEY from the environment; RUNPOD_REST_URL overrides https://rest.runpod.io/v1.",
    )
    runpod.add_argument("--name", required=True, help="endpoint name (the template is NAME-template)")
    runpod.add_argument("--image", required=True, help="worker image reference")
    runpod.add_argument("--template-name", help="template name (default: NAME-template)")
    runpod.add_argument("--gpu", action="append", metavar="TYPE", help="gpuTypeIds entry, in order of preference")
    runpod.add_argument("--gpu-count", type=int, default=1)
    runpod.add_argument("--workers-min", type=int, default=0)
    runpod.add_argument("--workers-max", type=int, default=3)
    runpod.add_argument("--idle-timeout", type=int, default=5, metavar="S")
    runpod.add_argument("--no-flashboot", action="store_true")
    runpod.add_argument("--execution-timeout", type=float, default=600.0, metavar="S")
    runpod.add_argument("--scaler-type", choices=["QUEUE_DELAY", "REQUEST_COUNT"], default="QUEUE_DELAY")
    runpod.add_argument("--scaler-value", type=int, default=4)
    runpod.add_argument("--network-volume", metavar="ID", help="networkVolumeId to attach")
    runpod.add_argument("--volume-mount-path", default="/runpod-volume")
    runpod.add_argument("--container-disk", type=int, default=50, metavar="GB")
    runpod.add_argument("--registry-auth-id", help="containerRegistryAuthId for a private image")
    runpod.add_argument("--data-center", action="append", metavar="ID", help="dataCenterIds entry (repeatable)")
    runpod.add_argument("--env", action="append", metavar="KEY=VALUE", help="worker environment (repeatable)")
    runpod.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    runpod.add_argument("--json", action="store_true", help="print the ids as JSON")
    runpod.set_defaults(run=_run_runpod)

    package = targets.add_parser("package", help="build the Lambda package (base install only)")
    package.add_argument("--out", default="dist")
    package.add_argument("--source", choices=["env", "pip"], default="env")
    package.set_defaults(run=_run_package)

    template = targets.add_parser("template", help="print the CloudFormation template (infra/template.yaml)")
    template.add_argument("--format", choices=["yaml", "json"], default="yaml")
    template.set_defaults(run=_run_template)

"""``comfy-relay emulate runpod``: serve the RunPod platform emulator and print how to connect to it."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(services: Any) -> None:
    parser: argparse.ArgumentParser = services.add_parser(
        "runpod",
        help="emulate RunPod serverless (the /v2 API and the worker protocol the runpod SDK speaks)",
        description="Serve RunPod's public /v2 API and the worker protocol of the runpod SDK on one port. "
        "Prints the environment a worker needs (export lines) once listening.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)",
    )
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--endpoint-id", default="local-endpoint", help="the {endpoint_id} of /v2/{endpoint_id}/")
    parser.add_argument("--api-key", default="local-api-key", help="key callers send as 'Authorization: Bearer'")
    parser.add_argument("--worker-key", default="local-worker-key", help="key workers send (RUNPOD_AI_API_KEY)")
    parser.add_argument("--pod-id", default="local-worker-1", help="RUNPOD_POD_ID printed for the worker")
    parser.add_argument(
        "--retention", type=float, default=1800.0, metavar="S", help="seconds /run results are kept (RunPod: 1800)"
    )
    parser.add_argument(
        "--runsync-retention", type=float, default=60.0, metavar="S", help="seconds /runsync results are kept"
    )
    parser.add_argument(
        "--webhook-retry-interval", type=float, default=10.0, metavar="S", help="seconds between webhook attempts"
    )
    parser.add_argument(
        "--ping-interval", type=int, default=10_000, metavar="MS", help="RUNPOD_PING_INTERVAL printed for the worker"
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here so `comfy-relay --help` works without aiohttp (the ``local`` extra).
    from handlers.local._serving import serve_forever  # noqa: PLC0415
    from handlers.local.runpod import EmulatorConfig, create_app, export_lines, worker_environment  # noqa: PLC0415

    try:
        config = EmulatorConfig(
            endpoint_id=args.endpoint_id,
            api_key=args.api_key,
            worker_key=args.worker_key,
            run_retention_s=args.retention,
            runsync_retention_s=args.runsync_retention,
            webhook_retry_interval_s=args.webhook_retry_interval,
        )
    except ValueError as exc:
        print(f"comfy-relay emulate runpod: {exc}", file=sys.stderr)
        return 2
    if args.ping_interval < 1000:
        print("comfy-relay emulate runpod: --ping-interval must be at least 1000 ms", file=sys.stderr)
        return 2

    def on_ready(url: str) -> None:
        env = worker_environment(url, config, pod_id=args.pod_id, ping_interval_ms=args.ping_interval)
        lines = [
            f"# RunPod emulator for endpoint {config.endpoint_id} at {url}",
            "# Worker environment:",
            *export_lines(env),
            "# Public API (Authorization: Bearer $RUNPOD_API_KEY):",
            *export_lines({"RUNPOD_API_BASE": f"{url}/v2", "RUNPOD_API_KEY": config.api_key}),
            "# Management API (comfy-relay deploy runpod):",
            *export_lines({"RUNPOD_REST_URL": f"{url}/v1"}),
        ]
        print("\n".join(lines), flush=True)

    serve_forever(lambda: create_app(config), args.host, args.port, on_ready)
    return 0

"""``python -m handlers.local.stack events|runpod``: processes of the local stack (started by ``local up``).

``events``: the Lambda event sources. Reads the dispatch environment (``RELAY_QUEUE_URL``, ``AWS_ENDPOINT_URL``,
...) and invokes the real handlers of ``handlers.dispatch`` until SIGINT or SIGTERM.

``runpod``: the RunPod emulator with short long-polls, so SDK workers (which finish their current job-take before
they exit) stop within a second, and quick webhook retries.

``moto``: moto's server, logging only warnings and errors (its request log - a line per SQS poll and DynamoDB read
- would be most of the stack's logs).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

#: How long the emulator holds job-take and job-stop polls open: also how long a stopping worker waits.
_LOCAL_POLL_WAIT_S = 1.0
_LOCAL_WEBHOOK_RETRY_S = 1.0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m handlers.local.stack", description=__doc__)
    parts = parser.add_subparsers(dest="part", required=True)
    events = parts.add_parser("events", help="the Lambda event sources")
    events.add_argument("--host", default="127.0.0.1")
    events.add_argument("--port", type=int, required=True, help="the Function URL listener (on_webhook)")
    events.add_argument("--queue-url", default=os.environ.get("RELAY_QUEUE_URL"), help="default: $RELAY_QUEUE_URL")
    events.add_argument("--reconcile-interval", type=float, default=60.0, metavar="S")
    runpod = parts.add_parser("runpod", help="the RunPod emulator, tuned for a local stack")
    runpod.add_argument("--host", default="127.0.0.1")
    runpod.add_argument("--port", type=int, required=True)
    runpod.add_argument("--endpoint-id", required=True)
    runpod.add_argument("--api-key", required=True)
    runpod.add_argument("--worker-key", required=True)
    moto = parts.add_parser("moto", help="moto's server (S3, SQS, DynamoDB), without its request log")
    moto.add_argument("--host", default="127.0.0.1")
    moto.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def _serve_runpod(args: argparse.Namespace) -> None:
    from handlers.local._serving import serve_forever  # noqa: PLC0415
    from handlers.local.runpod import EmulatorConfig, create_app  # noqa: PLC0415

    config = EmulatorConfig(
        endpoint_id=args.endpoint_id,
        api_key=args.api_key,
        worker_key=args.worker_key,
        job_take_wait_s=_LOCAL_POLL_WAIT_S,
        job_stop_wait_s=_LOCAL_POLL_WAIT_S,
        webhook_retry_interval_s=_LOCAL_WEBHOOK_RETRY_S,
    )
    serve_forever(
        lambda: create_app(config), args.host, args.port, lambda url: print(f"RunPod emulator at {url}", flush=True)
    )


async def _serve(args: argparse.Namespace) -> None:
    import boto3  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    from handlers.dispatch import on_queue, on_webhook, reconcile  # noqa: PLC0415
    from handlers.local._serving import bind_socket  # noqa: PLC0415
    from handlers.local.stack._event_loop import EventSources, LambdaFunctions  # noqa: PLC0415

    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    sqs = boto3.session.Session().client("sqs") if args.queue_url else None
    sources = EventSources(
        LambdaFunctions(on_queue=on_queue, on_webhook=on_webhook, reconcile=reconcile),
        sqs=sqs,
        queue_url=args.queue_url,
        region=region,
        reconcile_interval_s=args.reconcile_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(sources.app(), handle_signals=False, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    await web.SockSite(runner, bind_socket(args.host, args.port)).start()
    print(f"Lambda event sources: function URL http://{args.host}:{args.port}, queue {args.queue_url}", flush=True)
    tasks = [asyncio.create_task(sources.poll_queue(stop)), asyncio.create_task(sources.schedule_reconcile(stop))]
    try:
        await stop.wait()
    finally:
        await asyncio.wait(tasks, timeout=5.0)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.part == "moto":
        from moto.server import main as moto_main  # noqa: PLC0415

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_main(["-H", args.host, "-p", str(args.port)])
    elif args.part == "runpod":
        _serve_runpod(args)
    else:
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

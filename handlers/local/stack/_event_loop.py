"""The local event sources: what AWS does around the dispatch Lambdas, done in one process.

- SQS event source mapping: long-poll the job queue, invoke ``on_queue`` with an SQS-shaped batch, delete the
  messages that succeeded (``ReportBatchItemFailures``), leave the rest to become visible again. A handler that raises
  fails the whole batch, as on AWS.
- Function URL: every HTTP request becomes a payload-2.0 event for ``on_webhook``, its answer the HTTP response.
- EventBridge schedule: ``reconcile`` every ``reconcile_interval_s``.

Handlers are synchronous (they are Lambda functions) and run in threads, so a slow invocation never blocks the
HTTP listener. ``/_local/health`` is answered here, not by the function.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from handlers.local.stack._events import (
    HEALTH_PATH,
    LambdaContext,
    failed_message_ids,
    function_url_event,
    http_answer,
    scheduled_event,
    sqs_event,
)

__all__ = ["HEALTH_PATH", "EventSources", "LambdaFunctions"]

_log = logging.getLogger("comfy_relay.local.events")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class LambdaFunctions:
    on_queue: Handler
    on_webhook: Handler
    reconcile: Handler


@dataclass
class Counters:
    batches: int = 0
    messages: int = 0
    failed_messages: int = 0
    requests: int = 0
    reconciles: int = 0
    errors: int = 0


class EventSources:
    def __init__(
        self,
        functions: LambdaFunctions,
        *,
        sqs: Any,  # a boto3 SQS client (receive_message, delete_message_batch, get_queue_attributes), or None
        queue_url: str | None,
        region: str = "us-east-1",
        reconcile_interval_s: float = 60.0,
        batch_size: int = 10,
        wait_time_s: int = 1,
        function_timeout_s: float = 60.0,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be within 1..10 (SQS ReceiveMessage's limit)")
        if reconcile_interval_s <= 0:
            raise ValueError("reconcile_interval_s must be positive")
        self.functions = functions
        self.sqs = sqs
        self.queue_url = queue_url
        self.region = region
        self.reconcile_interval_s = reconcile_interval_s
        self.batch_size = batch_size
        self.wait_time_s = wait_time_s
        self.function_timeout_s = function_timeout_s
        self.counters = Counters()
        self._queue_arn = ""

    # ---------------------------------------------------------------------------------------------------- SQS

    async def poll_queue(self, stop: asyncio.Event) -> None:
        if self.sqs is None or self.queue_url is None:
            return
        sqs, url = self.sqs, self.queue_url
        answer = await asyncio.to_thread(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
        self._queue_arn = answer["Attributes"]["QueueArn"]
        while not stop.is_set():
            try:
                received = await asyncio.to_thread(
                    sqs.receive_message,
                    QueueUrl=url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=self.wait_time_s,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception as exc:  # the poller must survive a moto hiccup, as the AWS mapping does
                self.counters.errors += 1
                _log.warning("ReceiveMessage failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            messages = received.get("Messages") or []
            if messages:
                await self.deliver(messages)

    async def deliver(self, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke ``on_queue`` with one batch; delete what succeeded. Returns the ids left on the queue."""
        assert self.sqs is not None and self.queue_url is not None
        event = sqs_event(messages, self._queue_arn, self.region)
        ids = [m["MessageId"] for m in messages]
        context = LambdaContext("on_queue", timeout_s=self.function_timeout_s, region=self.region)
        self.counters.batches += 1
        self.counters.messages += len(ids)
        try:
            response = await asyncio.to_thread(self.functions.on_queue, event, context)
        except Exception:
            self.counters.errors += 1
            _log.error("on_queue raised; the whole batch stays on the queue:\n%s", traceback.format_exc())
            failed = set(ids)
        else:
            failed = failed_message_ids(response, ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)]
            await asyncio.to_thread(self.sqs.delete_message_batch, QueueUrl=self.queue_url, Entries=entries)
        self.counters.failed_messages += len(failed)
        _log.info("on_queue: %d message(s), %d failed", len(ids), len(failed))
        return failed

    # -------------------------------------------------------------------------------------------- function URL

    def app(self) -> web.Application:
        app = web.Application(client_max_size=6 * 1024 * 1024)  # Function URL payload limit: 6 MB
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_route("*", "/{tail:.*}", self._invoke_webhook)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "counters": vars(self.counters)})

    async def _invoke_webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        event = function_url_event(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=request.headers,
            body=body,
            source_ip=request.remote or "127.0.0.1",
            domain=request.host,
        )
        context = LambdaContext("on_webhook", timeout_s=self.function_timeout_s, region=self.region)
        self.counters.requests += 1
        try:
            result = await asyncio.to_thread(self.functions.on_webhook, event, context)
        except Exception:
            self.counters.errors += 1
            _log.error("on_webhook raised:\n%s", traceback.format_exc())
            # What a Function URL answers when the function errors.
            return web.json_response({"Message": "Internal Server Error"}, status=502)
        answer = http_answer(result)
        _log.info("on_webhook: %s %s -> %d", request.method, request.path, answer.status)
        response = web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        for cookie in answer.cookies:
            response.headers.add("Set-Cookie", cookie)
        return response

    # ------------------------------------------------------------------------------------------------ schedule

    async def schedule_reconcile(self, stop: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.reconcile_interval_s)
            if stop.is_set():
                return
            await self.reconcile_once()

    async def reconcile_once(self) -> object:
        context = LambdaContext("reconcile", timeout_s=self.function_timeout_s, region=self.region)
        self.counters.reconciles += 1
        try:
            result = await asyncio.to_thread(
                self.functions.reconcile, scheduled_event("comfy-relay-reconcile", self.region), context
            )
        except Exception:
            self.counters.errors += 1
            _log.error("reconcile raised:\n%s", traceback.format_exc())
            return None
        _log.info("reconcile: %s", result)
        return result

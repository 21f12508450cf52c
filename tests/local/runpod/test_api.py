"""The emulator over HTTP: the public API, and the worker protocol driven by hand (no SDK process)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from handlers.local._serving import ServerThread
from handlers.local.runpod import MIB
from tests.local.runpod.conftest import FAST_CONFIG, Emulator, serve_emulator, wait_for


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with serve_emulator() as served:
        yield served


@pytest.fixture
def worker(emulator: Emulator) -> Iterator[FakeWorker]:
    hand = FakeWorker(emulator)
    yield hand
    hand.client.close()


class FakeWorker:
    """Speaks the worker protocol with the URLs and headers the SDK uses (see research/runpod-sdk-traffic)."""

    def __init__(self, emulator: Emulator, worker_id: str = "w-hand") -> None:
        env = emulator.worker_env(pod_id=worker_id)
        self.take_url = env["RUNPOD_WEBHOOK_GET_JOB"].replace("$ID", worker_id)
        self.done_url = env["RUNPOD_WEBHOOK_POST_OUTPUT"].replace("$RUNPOD_POD_ID", worker_id)
        self.stream_url = env["RUNPOD_WEBHOOK_POST_STREAM"].replace("$RUNPOD_POD_ID", worker_id)
        self.ping_url = env["RUNPOD_WEBHOOK_PING"].replace("$RUNPOD_POD_ID", worker_id)
        self.client = httpx.Client(headers={"Authorization": env["RUNPOD_AI_API_KEY"]}, timeout=30)

    def take(self, in_progress: bool = False) -> httpx.Response:
        return self.client.get(f"{self.take_url}&job_in_progress={int(in_progress)}")

    def stop(self) -> httpx.Response:
        return self.client.get(self.take_url.replace("/job-take/", "/job-stop/"))

    def post(self, url: str, job_id: str, body: Any, is_stream: bool = False) -> httpx.Response:
        return self.client.post(
            url.replace("$ID", job_id) + f"&isStream={'true' if is_stream else 'false'}",
            content=json.dumps(body),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def done(self, job_id: str, body: Any, is_stream: bool = False) -> httpx.Response:
        return self.post(self.done_url, job_id, body, is_stream)


@dataclasses.dataclass
class Receiver:
    """A webhook receiver that answers 500 to its first ``failures`` calls."""

    failures: int = 0
    calls: list[tuple[int, dict[str, Any], str]] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            body = await request.json()
            with self.lock:
                status = 500 if len(self.calls) < self.failures else 200
                self.calls.append((status, body, request.content_type))
            return web.Response(status=status)

        app = web.Application()
        app.add_routes([web.post("/hook", hook)])
        return app


# -- auth, routing, malformed requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [f"Bearer {FAST_CONFIG.api_key}", FAST_CONFIG.api_key, f"bearer {FAST_CONFIG.api_key}"]
)
def test_auth_accepts_bearer_and_raw_key(emulator: Emulator, header: str) -> None:
    response = httpx.get(f"{emulator.api_base}/{FAST_CONFIG.endpoint_id}/health", headers={"Authorization": header})
    assert response.status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": FAST_CONFIG.worker_key}])
def test_auth_refuses_others(emulator: Emulator, headers: dict[str, str]) -> None:
    response = httpx.post(f"{emulator.api_base}/{FAST_CONFIG.endpoint_id}/run", json={"input": {}}, headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()
    assert emulator.admin("jobs")["jobs"] == []


def test_unknown_endpoint_job_and_route(emulator: Emulator) -> None:
    headers = {"Authorization": f"Bearer {FAST_CONFIG.api_key}"}
    response = httpx.get(f"{emulator.api_base}/other-endpoint/health", headers=headers)
    assert response.status_code == 404
    assert "other-endpoint" in response.json()["error"]
    for call in (emulator.client.get("/status/nope"), emulator.client.get("/stream/nope")):
        assert call.status_code == 404
        assert call.json() == {"error": "request does not exist"}
    assert emulator.client.post("/cancel/nope").status_code == 404
    assert emulator.client.post("/retry/nope").status_code == 404
    missing = httpx.get(f"{emulator.url}/v1/whatever")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    wrong_method = emulator.client.post("/status/x")
    assert wrong_method.status_code == 405
    assert "error" in wrong_method.json()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'"just a string"', "JSON object"),
        (b'{"foo": 1}', "input is required"),
        (b'{"input": "a string"}', "input must be a JSON object"),
        (b'{"input": {}, "policy": {"executionTimeout": -1}}', "executionTimeout"),
    ],
)
@pytest.mark.parametrize("route", ["/run", "/runsync"])
def test_malformed_bodies_get_400(emulator: Emulator, route: str, content: bytes, message: str) -> None:
    response = emulator.client.post(route, content=content)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert emulator.client.get("/health").status_code == 200  # still serving


def test_payload_limits(emulator: Emulator) -> None:
    big = {"input": {"blob": "x" * (11 * MIB)}}
    response = emulator.client.post("/run", json=big)
    assert response.status_code == 400
    assert "payload too large" in response.json()["error"]
    # /runsync takes up to 20 MB; it answers IN_QUEUE after its wait as no worker runs here.
    accepted = emulator.client.post("/runsync?wait=100", json=big)
    assert (accepted.status_code, accepted.json()["status"]) == (200, "IN_QUEUE")
    too_big = emulator.client.post("/runsync", json={"input": {"blob": "x" * (21 * MIB)}})
    assert too_big.status_code == 400


# -- jobs without a worker ---------------------------------------------------------------------------------------


def test_run_queues_and_health_counts(emulator: Emulator) -> None:
    response = emulator.client.post("/run", json={"input": {"a": 1}, "policy": {"lowPriority": True}})
    assert response.status_code == 200
    body = response.json()
    assert body == {"id": body["id"], "status": "IN_QUEUE"}
    assert emulator.status(body["id"]) == body
    assert emulator.client.get("/health").json() == {
        "jobs": {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 1, "retried": 0},
        "workers": {"idle": 0, "running": 0},
    }


def test_cancel_queued_and_retry_refused(emulator: Emulator) -> None:
    job_id = emulator.run({"input": {}})
    retry = emulator.client.post(f"/retry/{job_id}")
    assert retry.status_code == 400
    assert "FAILED or TIMED_OUT" in retry.json()["error"]
    assert emulator.client.post(f"/cancel/{job_id}").json() == {"id": job_id, "status": "CANCELLED"}
    assert emulator.status(job_id)["status"] == "CANCELLED"


def test_purge_queue(emulator: Emulator) -> None:
    ids = [emulator.run({"input": {"n": n}}) for n in range(3)]
    response = emulator.client.post("/purge-queue")
    assert response.json() == {"removed": 3, "status": "completed"}
    assert all(emulator.client.get(f"/status/{job_id}").status_code == 404 for job_id in ids)


def test_ttl_expiry_removes_the_job(emulator: Emulator) -> None:
    # Long enough that the first /status surely comes before the expiry, short enough to wait for.
    job_id = emulator.run({"input": {}, "policy": {"ttl": 1500}})
    assert emulator.status(job_id)["status"] == "IN_QUEUE"
    wait_for(lambda: emulator.client.get(f"/status/{job_id}").status_code == 404, 10, "the TTL to expire")


def test_status_ttl_parameter_extends(emulator: Emulator) -> None:
    job_id = emulator.run({"input": {}, "policy": {"ttl": 60_000}})
    assert emulator.client.get(f"/status/{job_id}?ttl=600000").status_code == 200
    assert emulator.admin("jobs")["jobs"][0]["policy"]["ttl"] == 600000
    assert emulator.client.get(f"/status/{job_id}?ttl=soon").status_code == 400


def test_runsync_returns_status_after_wait(emulator: Emulator) -> None:
    response = emulator.client.post("/runsync?wait=100", json={"input": {}})
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "IN_QUEUE"
    assert body["id"].startswith("sync-")
    assert emulator.client.post("/runsync?wait=soon", json={"input": {}}).status_code == 400


# -- admin knobs --------------------------------------------------------------------------------------------------


def test_fault_injection(emulator: Emulator) -> None:
    response = httpx.post(f"{emulator.url}/_emulator/faults", json={"status": 429, "count": 2, "routes": ["run"]})
    assert response.status_code == 200
    assert emulator.client.get("/health").status_code == 200  # other routes unaffected
    assert [emulator.client.post("/run", json={"input": {}}).status_code for _ in range(3)] == [429, 429, 200]
    httpx.post(f"{emulator.url}/_emulator/faults", json={"status": 503, "count": 1})
    failed = emulator.client.get("/health")
    assert (failed.status_code, "error" in failed.json()) == (503, True)
    assert httpx.post(f"{emulator.url}/_emulator/faults", json={"status": 200}).status_code == 400
    assert httpx.post(f"{emulator.url}/_emulator/faults", content=b"nope").status_code == 400


def test_forget_and_list(emulator: Emulator) -> None:
    job_id = emulator.run({"input": {"k": "v"}, "webhook": "http://127.0.0.1:9/h"})
    [listed] = emulator.admin("jobs")["jobs"]
    assert (listed["id"], listed["status"], listed["webhook"]) == (job_id, "IN_QUEUE", "http://127.0.0.1:9/h")
    assert httpx.post(f"{emulator.url}/_emulator/jobs/{job_id}/forget").json() == {"forgotten": job_id}
    assert emulator.client.get(f"/status/{job_id}").status_code == 404
    assert httpx.post(f"{emulator.url}/_emulator/jobs/{job_id}/forget").status_code == 404


# -- the worker protocol by hand ---------------------------------------------------------------------------------


def test_worker_auth_and_endpoint(emulator: Emulator, worker: FakeWorker) -> None:
    assert httpx.get(f"{worker.take_url}&job_in_progress=0").status_code == 401
    bad_key = httpx.get(worker.ping_url, headers={"Authorization": FAST_CONFIG.api_key})
    assert bad_key.status_code == 401
    other = worker.client.get(worker.ping_url.replace(f"/{FAST_CONFIG.endpoint_id}/", "/other/"))
    assert other.status_code == 404


def test_worker_round_trip(emulator: Emulator, worker: FakeWorker) -> None:
    assert worker.take().status_code == 204  # long poll with nothing queued
    job_id = emulator.run({"input": {"prompt": "hi"}, "webhook": "http://127.0.0.1:9/h"})
    taken = worker.take()
    assert taken.json() == {"id": job_id, "input": {"prompt": "hi"}, "webhook": "http://127.0.0.1:9/h"}
    assert worker.done(job_id, {"status": "IN_PROGRESS", "output": {"pct": 50}}).status_code == 200
    status = emulator.status(job_id)
    assert (status["status"], status["output"], status["workerId"]) == ("IN_PROGRESS", {"pct": 50}, "w-hand")
    assert worker.post(worker.stream_url, job_id, {"output": {"chunk": 0}}).status_code == 200
    assert emulator.client.get(f"/stream/{job_id}").json() == {
        "status": "IN_PROGRESS",
        "stream": [{"output": {"chunk": 0}}],
    }
    assert worker.done(job_id, {"output": [{"chunk": 0}]}, is_stream=True).status_code == 200
    assert emulator.status(job_id)["output"] == [{"chunk": 0}]
    assert emulator.client.get(f"/stream/{job_id}").json() == {"status": "COMPLETED", "stream": []}
    assert worker.client.get(worker.ping_url + "&runpod_version=1.12.0").status_code == 200
    assert emulator.admin("workers")["workers"][0]["pings"] == 1


def test_worker_take_is_woken_by_a_new_job(emulator: Emulator, worker: FakeWorker) -> None:
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(worker.take()))
    thread.start()
    wait_for(lambda: emulator.admin("workers")["workers"], 10, "the take to arrive")
    job_id = emulator.run({"input": {}})
    thread.join(10)
    assert result[0].json()["id"] == job_id


def test_worker_batch_take(emulator: Emulator, worker: FakeWorker) -> None:
    ids = [emulator.run({"input": {"n": n}}) for n in range(3)]
    batch_url = worker.take_url.replace("/job-take/", "/job-take-batch/") + "&batch_size=2&job_in_progress=0"
    assert [job["id"] for job in worker.client.get(batch_url).json()] == ids[:2]


def test_cancel_reaches_the_worker_through_job_stop(emulator: Emulator, worker: FakeWorker) -> None:
    assert worker.stop().status_code == 204
    job_id = emulator.run({"input": {}})
    worker.take()
    assert emulator.client.post(f"/cancel/{job_id}").json() == {"id": job_id, "status": "CANCELLED"}
    assert worker.stop().json() == {"jobsToStop": [job_id]}
    # A result after the cancel is accepted and ignored.
    assert worker.done(job_id, {"output": "late"}).status_code == 200
    assert emulator.status(job_id)["status"] == "CANCELLED"
    assert "output" not in emulator.status(job_id)


def test_execution_timeout_stops_the_worker(emulator: Emulator, worker: FakeWorker) -> None:
    job_id = emulator.run({"input": {}, "policy": {"executionTimeout": 200}})
    worker.take()
    # The stop long poll returns as soon as the timeout fires.
    assert worker.stop().json() == {"jobsToStop": [job_id]}
    assert emulator.status(job_id)["status"] == "TIMED_OUT"


def test_worker_saying_idle_requeues_its_job(emulator: Emulator, worker: FakeWorker) -> None:
    job_id = emulator.run({"input": {}})
    assert worker.take().json()["id"] == job_id
    # The worker restarted and asks again with nothing in progress: the job is handed out again.
    assert worker.take(in_progress=False).json()["id"] == job_id
    assert emulator.client.get("/health").json()["jobs"]["retried"] == 1


def test_oversized_result_gets_400(emulator: Emulator, worker: FakeWorker) -> None:
    job_id = emulator.run({"input": {}})
    worker.take()
    response = worker.done(job_id, {"output": "x" * (21 * MIB)})
    assert response.status_code == 400
    assert emulator.status(job_id)["status"] == "IN_PROGRESS"
    assert worker.done(job_id, "not an object").status_code == 400
    assert worker.post(worker.stream_url, job_id, [1]).status_code == 400
    assert worker.done("unknown-job", {"output": 1}).status_code == 404


def test_failure_and_retry_keep_the_id(emulator: Emulator, worker: FakeWorker) -> None:
    job_id = emulator.run({"input": {"x": 1}})
    worker.take()
    worker.done(job_id, {"error": "boom"})
    assert emulator.status(job_id)["error"] == "boom"
    assert emulator.client.post(f"/retry/{job_id}").json() == {"id": job_id, "status": "IN_QUEUE"}
    assert emulator.status(job_id) == {"id": job_id, "status": "IN_QUEUE"}
    assert worker.take(in_progress=True).json() == {"id": job_id, "input": {"x": 1}}


# -- webhooks -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failures", [0, 2, 3])
def test_webhook_body_and_retries(emulator: Emulator, failures: int, worker: FakeWorker) -> None:
    receiver = Receiver(failures=failures)
    with ServerThread(receiver.app) as hook_server:
        hook = f"{hook_server.url}/hook?token=secret"
        job_id = emulator.run({"input": {"prompt": "hi"}, "webhook": hook})
        worker.take()
        worker.done(job_id, {"output": {"ok": True}})
        expected_calls = min(failures + 1, FAST_CONFIG.webhook_attempts)
        wait_for(lambda: len(emulator.admin("webhooks")["deliveries"]) == expected_calls, 10, "webhook attempts")
    status = emulator.status(job_id)
    expected = {k: v for k, v in status.items() if k != "workerId"} | {"input": {"prompt": "hi"}, "webhook": hook}
    assert [call[1] for call in receiver.calls] == [expected] * expected_calls
    assert {call[2] for call in receiver.calls} == {"application/json"}
    assert [d["status"] for d in emulator.admin("webhooks")["deliveries"]] == [call[0] for call in receiver.calls]


def test_webhook_on_failure_and_cancel(emulator: Emulator, worker: FakeWorker) -> None:
    receiver = Receiver()
    with ServerThread(receiver.app) as hook_server:
        hook = f"{hook_server.url}/hook"
        failed = emulator.run({"input": {}, "webhook": hook})
        worker.take()
        worker.done(failed, {"error": "bad"})
        cancelled = emulator.run({"input": {}, "webhook": hook})
        emulator.client.post(f"/cancel/{cancelled}")
        wait_for(lambda: len(receiver.calls) == 2, 10, "two webhooks")
    by_id = {call[1]["id"]: call[1] for call in receiver.calls}
    assert (by_id[failed]["status"], by_id[failed]["error"]) == ("FAILED", "bad")
    assert by_id[cancelled]["status"] == "CANCELLED"

"""QA verdicts as ``status`` and ``jobs`` show them."""

from __future__ import annotations

from handlers.cli._jobs import record_row
from handlers.cli._qa_text import qa_summary
from handlers.contract import JobQa, OutputQa, QaAttempt, QaCheck, QaFailure, QaVerdict


def test_an_output_shows_its_failed_checks_with_scores() -> None:
    qa = OutputQa(
        verdict=QaVerdict.FAIL,
        checks=[
            QaCheck(name="decodes", verdict=QaVerdict.PASS),
            QaCheck(name="black", verdict=QaVerdict.FAIL, score=0.0),
            QaCheck(name="clipping", verdict=QaVerdict.WARN, score=1.0),
        ],
    )
    assert qa_summary(qa.model_dump(mode="json")) == "fail - black 0.0, clipping 1.0"


def test_a_job_record_shows_its_verdict_attempts_and_failures() -> None:
    qa = JobQa(
        verdict=QaVerdict.FAIL,
        policy="retry",
        attempts=[
            QaAttempt(attempt=1, verdict=QaVerdict.FAIL),
            QaAttempt(
                attempt=2,
                verdict=QaVerdict.FAIL,
                failures=[QaFailure(node_id="9", filename="a.png", checks=["black", "uniform"])],
            ),
        ],
    )
    row = record_row({"job_id": "j", "state": "FAILED", "qa": qa.model_dump(mode="json")})
    assert "fail after 2 attempts (policy retry) - a.png: black, uniform" in row


def test_run_and_enqueue_take_a_qa_policy() -> None:
    import argparse

    from handlers.cli._job_input import job_input_from_args
    from handlers.cli._run import job_input_arguments

    parser = argparse.ArgumentParser()
    job_input_arguments(parser)
    args = parser.parse_args(["image/sdxl-basic", "-p", "prompt=a fox", "--qa", "retry"])
    assert job_input_from_args(args)["qa"] == {"policy": "retry"}
    assert "qa" not in job_input_from_args(parser.parse_args(["image/sdxl-basic", "-p", "prompt=a fox"]))


def test_status_shows_the_qa_of_a_runpod_result() -> None:
    from handlers.cli._follow import result_qa

    qa = JobQa(verdict=QaVerdict.PASS, policy="retry", attempts=[QaAttempt(attempt=1, verdict=QaVerdict.PASS)])
    status = {"id": "rp", "status": "COMPLETED", "output": {"job_id": "j", "qa": qa.model_dump(mode="json")}}
    shown = result_qa(status)
    assert shown is not None and qa_summary(shown) == "pass (policy retry)"
    assert result_qa({"id": "rp", "status": "IN_PROGRESS"}) is None

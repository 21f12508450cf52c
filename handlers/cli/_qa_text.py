"""QA verdicts in one line, for ``status`` and ``jobs``: from the JSON of an output's or a job's ``qa``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["qa_summary"]


def qa_summary(qa: Mapping[str, Any]) -> str:
    verdict = str(qa.get("verdict") or "recorded")
    checks = qa.get("checks")
    if isinstance(checks, list):
        bad = [
            f"{c.get('name')} {c.get('score')}" if c.get("score") is not None else str(c.get("name"))
            for c in checks
            if isinstance(c, Mapping) and c.get("verdict") in ("fail", "warn")
        ]
        return f"{verdict} - {', '.join(bad)}" if bad else verdict
    attempts = qa.get("attempts")
    if isinstance(attempts, list):
        text = verdict
        if len(attempts) > 1:
            text += f" after {len(attempts)} attempts"
        if qa.get("policy"):
            text += f" (policy {qa['policy']})"
        last = attempts[-1] if attempts and isinstance(attempts[-1], Mapping) else {}
        failures = last.get("failures") if isinstance(last, Mapping) else None
        if isinstance(failures, list) and failures:
            named = [
                f"{f.get('filename') or f.get('node_id')}: {', '.join(map(str, f.get('checks') or []))}"
                for f in failures
                if isinstance(f, Mapping)
            ]
            text += " - " + "; ".join(named)
        return text
    return verdict

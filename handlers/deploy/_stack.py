"""Create or update a CloudFormation stack through a change set: decide create vs update from the stack's state,
show the change set, execute it, wait, and report the outputs or what failed.

The decisions are pure functions (:func:`change_set_type`, :func:`no_changes`, :func:`describe_changes`,
:func:`stack_outcome`, :func:`parameter_list`); :func:`deploy_stack` does the I/O with a boto3 CloudFormation client
and an injectable ``sleep``, so tests drive it against moto without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "DeployError",
    "Outcome",
    "StackResult",
    "change_set_type",
    "deploy_stack",
    "describe_changes",
    "no_changes",
    "parameter_list",
    "stack_outcome",
]

_NO_CHANGES: Final = ("didn't contain changes", "No updates are to be performed")
_SUCCEEDED: Final = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})


class DeployError(Exception):
    """The deploy cannot go on (bad state, bad parameters, a change set that failed for a real reason)."""


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    NO_CHANGES = "no changes"
    ROLLED_BACK = "rolled back"
    FAILED = "failed"
    REVIEW_ONLY = "change set left for review"


@dataclass
class StackResult:
    outcome: Outcome
    status: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    change_set: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.SUCCEEDED, Outcome.NO_CHANGES, Outcome.REVIEW_ONLY)


def change_set_type(status: str | None) -> str:
    """``CREATE`` or ``UPDATE`` for a stack in ``status`` (``None``: no such stack)."""
    if status is None or status == "REVIEW_IN_PROGRESS":  # REVIEW_IN_PROGRESS: a create change set never executed
        return "CREATE"
    if status == "ROLLBACK_COMPLETE":
        raise DeployError("the stack's creation failed and was rolled back (ROLLBACK_COMPLETE): delete it, then deploy")
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"the stack is busy ({status}): wait for it to finish, then deploy again")
    if status.endswith("_FAILED") and status != "UPDATE_ROLLBACK_FAILED":
        return "UPDATE"
    if status == "UPDATE_ROLLBACK_FAILED":
        raise DeployError(
            "UPDATE_ROLLBACK_FAILED: continue the rollback in the console or with "
            "`aws cloudformation continue-update-rollback`, then deploy again"
        )
    return "UPDATE"


def no_changes(status: str, reason: str | None) -> bool:
    """A change set that failed only because there was nothing to change (AWS says so in ``StatusReason``)."""
    return status == "FAILED" and any(text in (reason or "") for text in _NO_CHANGES)


def describe_changes(changes: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per resource change: action, logical id, type, and whether it replaces the resource."""
    lines = []
    for change in changes:
        resource = change.get("ResourceChange", {})
        replacement = resource.get("Replacement")
        suffix = " (REPLACEMENT)" if replacement == "True" else " (may replace)" if replacement == "Conditional" else ""
        lines.append(
            f"  {resource.get('Action', '?'):<7} {resource.get('LogicalResourceId', '?'):<28} "
            f"{resource.get('ResourceType', '?')}{suffix}"
        )
    return lines


def stack_outcome(status: str) -> Outcome | None:
    """The outcome a final stack status means; ``None`` while still in progress."""
    if status.endswith("_IN_PROGRESS"):
        return None
    if status in _SUCCEEDED:
        return Outcome.SUCCEEDED
    if "ROLLBACK" in status:
        return Outcome.ROLLED_BACK
    return Outcome.FAILED


def parameter_list(
    given: Mapping[str, str],
    declared: Mapping[str, Mapping[str, Any]],
    *,
    updating: bool,
    previous: Mapping[str, str],
) -> list[dict[str, Any]]:
    """CloudFormation ``Parameters``: what was given; on an update, the stack's current value of anything not given
    (so a redeploy need not repeat every parameter, and an unchanged one is sent unchanged: the template has no
    NoEcho parameter, so values can be read back); on a create, required parameters must all be given."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DeployError(f"unknown parameter(s): {', '.join(unknown)} (the template declares {', '.join(declared)})")
    result: list[dict[str, Any]] = []
    missing = []
    for name, spec in declared.items():
        if name in given:
            result.append({"ParameterKey": name, "ParameterValue": given[name]})
        elif updating and name in previous:
            result.append({"ParameterKey": name, "ParameterValue": previous[name]})
        elif "Default" not in spec:
            missing.append(name)
    if missing:
        raise DeployError(f"missing parameter(s): {', '.join(missing)}")
    return result


Sleep = Callable[[float], None]
Say = Callable[[str], None]


@dataclass(frozen=True)
class _Waits:
    poll_s: float = 5.0
    change_set_timeout_s: float = 600.0
    stack_timeout_s: float = 3600.0


def _stack(cf: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        stacks = cf.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


def _outputs(stack: Mapping[str, Any] | None) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs") or []}


def _wait_change_set(cf: Any, stack_name: str, change_set: str, sleep: Sleep, waits: _Waits) -> dict[str, Any]:
    waited = 0.0
    while True:
        described: dict[str, Any] = cf.describe_change_set(StackName=stack_name, ChangeSetName=change_set)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return described
        if waited >= waits.change_set_timeout_s:
            raise DeployError(f"change set {change_set} still {described['Status']} after {waited:.0f} s")
        sleep(waits.poll_s)
        waited += waits.poll_s


def _failed_events(cf: Any, stack_name: str, since: Any) -> list[str]:
    events = cf.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    lines = []
    for event in reversed(events):
        if since is not None and event.get("Timestamp") is not None and event["Timestamp"] < since:
            continue
        if str(event.get("ResourceStatus", "")).endswith("_FAILED"):
            lines.append(f"{event.get('LogicalResourceId')}: {event.get('ResourceStatusReason', '')}")
    return lines


def deploy_stack(
    cf: Any,
    *,
    stack_name: str,
    template_body: str,
    declared: Mapping[str, Mapping[str, Any]],
    parameters: Mapping[str, str],
    execute: bool = True,
    say: Say = print,
    sleep: Sleep = time.sleep,
    waits: _Waits | None = None,
) -> StackResult:
    waits = waits or _Waits()
    stack = _stack(cf, stack_name)
    kind = change_set_type(stack["StackStatus"] if stack else None)
    previous = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters") or []}
    params = parameter_list(parameters, declared, updating=kind == "UPDATE", previous=previous)
    name = f"comfy-relay-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    say(f"{'Creating' if kind == 'CREATE' else 'Updating'} stack {stack_name}: change set {name}")
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        cf.create_change_set(
            StackName=stack_name,
            ChangeSetName=name,
            ChangeSetType=kind,
            TemplateBody=template_body,
            Parameters=params,
            Capabilities=["CAPABILITY_IAM"],
            Description="comfy-relay deploy aws",
        )
    except ClientError as exc:
        if any(text in str(exc) for text in _NO_CHANGES):  # some endpoints refuse at once instead
            say("No changes: the stack already matches.")
            return StackResult(Outcome.NO_CHANGES, stack["StackStatus"] if stack else None, _outputs(stack))
        raise DeployError(f"CreateChangeSet failed: {exc}") from exc
    described = _wait_change_set(cf, stack_name, name, sleep, waits)
    if described["Status"] == "FAILED":
        if no_changes(described["Status"], described.get("StatusReason")):
            cf.delete_change_set(StackName=stack_name, ChangeSetName=name)
            say("No changes: the stack already matches.")
            return StackResult(Outcome.NO_CHANGES, stack["StackStatus"] if stack else None, _outputs(stack), [], name)
        raise DeployError(f"change set {name} failed: {described.get('StatusReason')}")
    changes = described.get("Changes") or []
    say(f"Change set {name} ({len(changes)} resource change(s)):")
    for line in describe_changes(changes) or ["  (the service listed no resource changes)"]:
        say(line)
    if not execute:
        say(
            f"Not executed (--no-execute). Execute with: aws cloudformation execute-change-set "
            f"--stack-name {stack_name} --change-set-name {name}"
        )
        return StackResult(Outcome.REVIEW_ONLY, described.get("Status"), _outputs(stack), [], name)
    started = (cf.describe_stacks(StackName=stack_name)["Stacks"][0]).get("LastUpdatedTime")
    cf.execute_change_set(StackName=stack_name, ChangeSetName=name)
    waited = 0.0
    while True:
        current = _stack(cf, stack_name)
        status = current["StackStatus"] if current else "DELETE_COMPLETE"
        outcome = stack_outcome(status)
        if outcome is not None:
            break
        if waited >= waits.stack_timeout_s:
            raise DeployError(f"stack still {status} after {waited:.0f} s; it keeps going, check the console")
        sleep(waits.poll_s)
        waited += waits.poll_s
    say(f"Stack {stack_name}: {status}")
    if outcome is Outcome.SUCCEEDED:
        return StackResult(outcome, status, _outputs(current), [], name)
    return StackResult(outcome, status, _outputs(current), _failed_events(cf, stack_name, started), name)

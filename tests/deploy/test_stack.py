"""Change-set decisions (pure), and ``deploy_stack`` against an in-memory CloudFormation that can roll back."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers.deploy._stack import (
    DeployError,
    Outcome,
    change_set_type,
    deploy_stack,
    describe_changes,
    no_changes,
    parameter_list,
    stack_outcome,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(None, "CREATE"), ("REVIEW_IN_PROGRESS", "CREATE"), ("CREATE_COMPLETE", "UPDATE"),
     ("UPDATE_ROLLBACK_COMPLETE", "UPDATE"), ("UPDATE_COMPLETE", "UPDATE")],
)  # fmt: skip
def test_create_or_update(status: str | None, kind: str) -> None:
    assert change_set_type(status) == kind


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED"])
def test_states_a_change_set_cannot_start_from(status: str) -> None:
    with pytest.raises(DeployError):
        change_set_type(status)


def test_no_changes_is_recognised_only_for_its_reason() -> None:
    reason = "The submitted information didn't contain changes. Submit different information to create a change set."
    assert no_changes("FAILED", reason)
    assert not no_changes("FAILED", "Template format error: unsupported structure")
    assert not no_changes("CREATE_COMPLETE", reason)


def test_outcomes() -> None:
    assert stack_outcome("UPDATE_IN_PROGRESS") is None
    assert stack_outcome("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS") is None
    assert stack_outcome("CREATE_COMPLETE") is Outcome.SUCCEEDED
    assert stack_outcome("UPDATE_ROLLBACK_COMPLETE") is Outcome.ROLLED_BACK
    assert stack_outcome("ROLLBACK_COMPLETE") is Outcome.ROLLED_BACK
    assert stack_outcome("CREATE_FAILED") is Outcome.FAILED


def test_parameters_on_create_and_on_update() -> None:
    declared = {"A": {"Type": "String"}, "B": {"Type": "Number", "Default": 1}}
    assert parameter_list({"A": "x"}, declared, updating=False, previous={}) == [
        {"ParameterKey": "A", "ParameterValue": "x"}
    ]
    with pytest.raises(DeployError, match="missing parameter"):
        parameter_list({}, declared, updating=False, previous={})
    assert parameter_list({"B": "2"}, declared, updating=True, previous={"A": "x", "B": "1"}) == [
        {"ParameterKey": "A", "ParameterValue": "x"},
        {"ParameterKey": "B", "ParameterValue": "2"},
    ]
    with pytest.raises(DeployError, match="unknown parameter"):
        parameter_list({"C": "1"}, declared, updating=False, previous={})


def test_changes_are_listed_with_replacements_flagged() -> None:
    lines = describe_changes(
        [
            {"ResourceChange": {"Action": "Modify", "LogicalResourceId": "JobQueue",
                                "ResourceType": "AWS::SQS::Queue", "Replacement": "True"}},
            {"ResourceChange": {"Action": "Add", "LogicalResourceId": "X", "ResourceType": "AWS::SNS::Topic"}},
        ]
    )  # fmt: skip
    assert "Modify" in lines[0] and "JobQueue" in lines[0] and "REPLACEMENT" in lines[0]
    assert "Add" in lines[1] and "REPLACEMENT" not in lines[1]


class FakeCloudFormation:
    """Enough of CloudFormation for one update whose execution ends in ``final`` after two polls."""

    def __init__(self, final: str, *, reason: str | None = None) -> None:
        self.final = final
        self.reason = reason
        self.polls = 0
        self.executed = False
        self.deleted: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        status = "UPDATE_COMPLETE"
        if self.executed:
            self.polls += 1
            status = "UPDATE_IN_PROGRESS" if self.polls < 3 else self.final
        stack = {
            "StackName": StackName,
            "StackStatus": status,
            "Parameters": [{"ParameterKey": "A", "ParameterValue": "a"}],
        }
        if status == "UPDATE_COMPLETE":
            stack["Outputs"] = [{"OutputKey": "QueueUrl", "OutputValue": "https://q"}]
        return {"Stacks": [stack]}

    def create_change_set(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["ChangeSetType"] == "UPDATE"
        assert kwargs["Parameters"] == [{"ParameterKey": "A", "ParameterValue": "a"}]
        return {"Id": "cs"}

    def describe_change_set(self, **kwargs: Any) -> dict[str, Any]:
        if self.reason is not None:
            return {"Status": "FAILED", "StatusReason": self.reason}
        return {"Status": "CREATE_COMPLETE", "Changes": [
            {"ResourceChange": {"Action": "Modify", "LogicalResourceId": "JobQueue", "ResourceType": "AWS::SQS::Queue"}}
        ]}  # fmt: skip

    def delete_change_set(self, **kwargs: Any) -> None:
        self.deleted.append(kwargs["ChangeSetName"])

    def execute_change_set(self, **kwargs: Any) -> None:
        self.executed = True

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {"StackEvents": [
            {"LogicalResourceId": "JobQueue", "ResourceStatus": "UPDATE_FAILED", "ResourceStatusReason": "quota"},
        ]}  # fmt: skip


def _deploy(cf: FakeCloudFormation, said: list[str]) -> Any:
    return deploy_stack(
        cf,
        stack_name="s",
        template_body="{}",
        declared={"A": {"Type": "String"}},
        parameters={},
        say=said.append,
        sleep=lambda s: None,
    )


def test_a_rolled_back_update_is_reported_with_the_failed_resources() -> None:
    said: list[str] = []
    result = _deploy(FakeCloudFormation("UPDATE_ROLLBACK_COMPLETE"), said)
    assert result.outcome is Outcome.ROLLED_BACK and not result.ok
    assert result.failures == ["JobQueue: quota"]
    assert any("Modify" in line and "JobQueue" in line for line in said)


def test_a_successful_update_waits_for_the_end_and_returns_the_outputs() -> None:
    cf = FakeCloudFormation("UPDATE_COMPLETE")
    result = _deploy(cf, [])
    assert result.ok and result.outcome is Outcome.SUCCEEDED
    assert cf.polls == 3
    assert result.outputs == {"QueueUrl": "https://q"}


def test_an_empty_change_set_is_deleted_and_reported_as_no_changes() -> None:
    cf = FakeCloudFormation("UPDATE_COMPLETE", reason="The submitted information didn't contain changes.")
    said: list[str] = []
    result = _deploy(cf, said)
    assert result.outcome is Outcome.NO_CHANGES and result.ok
    assert cf.deleted and not cf.executed
    assert "No changes" in said[-1]


def test_a_change_set_that_fails_for_a_real_reason_is_an_error() -> None:
    with pytest.raises(DeployError, match="Template error"):
        _deploy(FakeCloudFormation("UPDATE_COMPLETE", reason="Template error: unresolved resource X"), [])


def test_client_errors_other_than_no_changes_are_errors() -> None:
    class Refusing(FakeCloudFormation):
        def create_change_set(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "bad"}}, "CreateChangeSet")

    with pytest.raises(DeployError, match="bad"):
        _deploy(Refusing("UPDATE_COMPLETE"), [])

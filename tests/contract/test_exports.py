"""The contract's public surface is pinned: adding or removing a name is a deliberate change to this list."""

from __future__ import annotations

import json
import subprocess
import sys

from handlers import contract
from tests.conftest import REPO

EXPECTED = [
    "BUILTIN_NAME_FIELDS",
    "INITIAL_STATES",
    "JOB_ID_PATTERN",
    "MAX_DATASET_URLS",
    "MAX_GRAPH_NODES",
    "MAX_INLINE_BASE64_BYTES",
    "MAX_JOB_INPUT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_LABELS",
    "MAX_MEDIA_ITEMS",
    "MAX_PRESIGN_SECONDS",
    "MAX_TIMEOUT_S",
    "RETRYABLE_CODES",
    "SIGNATURE_HEADER",
    "TERMINAL_STATES",
    "TIMESTAMP_HEADER",
    "TRANSITIONS",
    "CodedError",
    "ComfyUIUsed",
    "CustomNodeUsed",
    "Dataset",
    "ErrorCode",
    "ExecutionFailure",
    "GraphFormat",
    "JobError",
    "JobInput",
    "JobProgress",
    "JobQa",
    "JobRecord",
    "JobResult",
    "JobState",
    "LegacyImage",
    "LoraUsed",
    "MediaItem",
    "ModelFileUsed",
    "NamePattern",
    "NodeError",
    "Notify",
    "OutputFormat",
    "OutputItem",
    "OutputKind",
    "OutputOptions",
    "OutputQa",
    "OutputReadyEvent",
    "OutputRole",
    "PreviewOptions",
    "Priority",
    "Problem",
    "ProgressEvent",
    "ProgressWebhook",
    "ProgressWebhookPayload",
    "Provenance",
    "QaAttempt",
    "QaCheck",
    "QaFailure",
    "QaOptions",
    "QaPolicy",
    "QaThresholds",
    "QaVerdict",
    "QueueMessage",
    "RegisteredLora",
    "RelayEvent",
    "RunPodJobStatus",
    "RunPodStatus",
    "RunPolicy",
    "SeedUsed",
    "SignatureError",
    "Timings",
    "Variation",
    "can_transition",
    "canonical_json",
    "comfyui_execution_error",
    "comfyui_rejection_error",
    "derive_job_id",
    "format_path",
    "graph_format",
    "input_digest",
    "is_job_id",
    "is_terminal",
    "job_input_schema",
    "json_shape_problem",
    "name_value",
    "sign_webhook",
    "split_override_key",
    "state_for_runpod",
    "summarize",
    "validation_problems",
    "verify_webhook",
    "webhook_signature",
]


def test_all_is_pinned() -> None:
    assert contract.__all__ == EXPECTED


def test_every_exported_name_exists_and_is_defined_in_the_package() -> None:
    for name in contract.__all__:
        member = getattr(contract, name)
        module = getattr(member, "__module__", None)
        if module is not None and isinstance(member, type):
            assert module.startswith("handlers.contract."), (name, module)


_ALLOWED_ROOTS = {"handlers", "pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection"}


def test_contract_imports_only_pydantic_and_the_standard_library() -> None:
    # The dispatch Lambdas import the contract: runpod (1.8 s import), pillow and boto3 must stay out.
    code = (
        "import sys, json; before = set(sys.modules); import handlers.contract; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = set(json.loads(result.stdout))
    assert "pydantic" in loaded  # the check itself works
    # _sysconfigdata_<platform> is the standard library's, under a per-platform name.
    foreign = {m for m in loaded - set(sys.stdlib_module_names) - _ALLOWED_ROOTS if not m.startswith("_sysconfigdata")}
    assert foreign == set()

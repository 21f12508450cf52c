"""The job contract: pydantic models at every boundary (caller → worker, SQS → dispatch, worker → caller).

Imports only pydantic and the standard library: the dispatch Lambdas import it, and so must stay light.
Validation failures become ``{path, message}`` problems (:func:`validation_problems`), failures become a
:class:`JobError` in RunPod's ``{"error": "<code>: <message>", ...}`` shape, and :func:`job_input_schema` is the
JSON Schema of a job's input, generated from :class:`JobInput`.
"""

from handlers.contract._comfyui_errors import comfyui_execution_error, comfyui_rejection_error
from handlers.contract._common import JOB_ID_PATTERN, MAX_JSON_DEPTH, canonical_json, is_job_id, json_shape_problem
from handlers.contract._dataset import MAX_DATASET_URLS, Dataset
from handlers.contract._dispatch import Notify, Priority, QueueMessage, RunPolicy, derive_job_id, input_digest
from handlers.contract._errors import (
    RETRYABLE_CODES,
    CodedError,
    ErrorCode,
    ExecutionFailure,
    JobError,
    NodeError,
    summarize,
)
from handlers.contract._job import (
    MAX_GRAPH_NODES,
    MAX_INLINE_BASE64_BYTES,
    MAX_JOB_INPUT_BYTES,
    MAX_MEDIA_ITEMS,
    MAX_PRESIGN_SECONDS,
    MAX_TIMEOUT_S,
    GraphFormat,
    JobInput,
    LegacyImage,
    MediaItem,
    OutputFormat,
    OutputOptions,
    ProgressWebhook,
    graph_format,
    job_input_schema,
    split_override_key,
)
from handlers.contract._problems import Problem, format_path, validation_problems
from handlers.contract._progress import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    OutputReadyEvent,
    ProgressEvent,
    ProgressWebhookPayload,
    RelayEvent,
    SignatureError,
    sign_webhook,
    verify_webhook,
    webhook_signature,
)
from handlers.contract._record import JobProgress, JobRecord, RunPodJobStatus
from handlers.contract._result import JobResult, OutputItem, OutputKind, SeedUsed, Timings
from handlers.contract._state import (
    INITIAL_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    JobState,
    RunPodStatus,
    can_transition,
    is_terminal,
    state_for_runpod,
)

__all__ = [
    "INITIAL_STATES",
    "JOB_ID_PATTERN",
    "MAX_DATASET_URLS",
    "MAX_GRAPH_NODES",
    "MAX_INLINE_BASE64_BYTES",
    "MAX_JOB_INPUT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_MEDIA_ITEMS",
    "MAX_PRESIGN_SECONDS",
    "MAX_TIMEOUT_S",
    "RETRYABLE_CODES",
    "SIGNATURE_HEADER",
    "TERMINAL_STATES",
    "TIMESTAMP_HEADER",
    "TRANSITIONS",
    "CodedError",
    "Dataset",
    "ErrorCode",
    "ExecutionFailure",
    "GraphFormat",
    "JobError",
    "JobInput",
    "JobProgress",
    "JobRecord",
    "JobResult",
    "JobState",
    "LegacyImage",
    "MediaItem",
    "NodeError",
    "Notify",
    "OutputFormat",
    "OutputItem",
    "OutputKind",
    "OutputOptions",
    "OutputReadyEvent",
    "Priority",
    "Problem",
    "ProgressEvent",
    "ProgressWebhook",
    "ProgressWebhookPayload",
    "QueueMessage",
    "RelayEvent",
    "RunPodJobStatus",
    "RunPodStatus",
    "RunPolicy",
    "SeedUsed",
    "SignatureError",
    "Timings",
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
    "sign_webhook",
    "split_override_key",
    "state_for_runpod",
    "summarize",
    "validation_problems",
    "verify_webhook",
    "webhook_signature",
]

"""What the worker and the dispatch Lambdas share below the job contract: one ``ConfigError``, one ``Backoff``,
one JSON log format with one redaction, and one reading of AWS error answers.

Standard library only: the Lambda package ships it (``handlers.deploy.DISPATCH_PACKAGES``) and dispatch's cold
import must stay cheap. Botocore's exception classes are translated by each half at its own boundary; what is shared
here is the decision (transient, not found, access denied, invalid), made from the error answer alone.
"""

from handlers.common._aws_errors import TRANSIENT_CODES, AwsErrorKind, aws_error_code, classify_aws_error
from handlers.common._backoff import Backoff
from handlers.common._config_error import ConfigError
from handlers.common._logs import (
    LOG_KEYS,
    JsonFormatter,
    RedactingFilter,
    job_context,
    redact,
    register_secret,
    set_prompt_id,
)

__all__ = [
    "LOG_KEYS",
    "TRANSIENT_CODES",
    "AwsErrorKind",
    "Backoff",
    "ConfigError",
    "JsonFormatter",
    "RedactingFilter",
    "aws_error_code",
    "classify_aws_error",
    "job_context",
    "redact",
    "register_secret",
    "set_prompt_id",
]

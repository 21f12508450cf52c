"""Settings whose values live in Secrets Manager or SSM Parameter Store, fetched once per cold start.

For each name in :data:`REFERABLE`, the environment may hold the value itself (``NAME``), the id or ARN of a Secrets
Manager secret (``NAME_SECRET``), or the name of an SSM parameter (``NAME_PARAMETER``, SecureString decrypted) —
exactly one of them. :func:`resolve_references` returns the environment with the references replaced by the values,
so settings are validated once, the same way, wherever the values came from. Values are never logged; a failed
lookup names the reference, not what it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from handlers.common import ConfigError

__all__ = ["PARAMETER_SUFFIX", "REFERABLE", "SECRET_SUFFIX", "references", "resolve_references"]

SECRET_SUFFIX: Final = "_SECRET"  # noqa: S105  (a name suffix, not a secret)
PARAMETER_SUFFIX: Final = "_PARAMETER"
#: The settings that may be given by reference: the four secrets, and the webhook URL (a stack cannot hand a
#: function its own Function URL in the environment, so the stack keeps it in a parameter).
REFERABLE: Final = (
    "RUNPOD_API_KEY",
    "RELAY_WEBHOOK_TOKEN",
    "RELAY_PROGRESS_SECRET",
    "RELAY_API_TOKEN",
    "RELAY_WEBHOOK_URL",
)


def references(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``NAME`` → (``"secret"`` or ``"parameter"``, reference) for every setting given by reference. Raises
    :class:`ConfigError` when a setting is given more than one way."""
    found: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for name in REFERABLE:
        given = {
            kind: environ.get(name + suffix, "")
            for kind, suffix in (("value", ""), ("secret", SECRET_SUFFIX), ("parameter", PARAMETER_SUFFIX))
        }
        present = [kind for kind, value in given.items() if value]
        if len(present) > 1:
            names = ", ".join(
                name + {"value": "", "secret": SECRET_SUFFIX, "parameter": PARAMETER_SUFFIX}[k] for k in present
            )
            problems.append(f"{name}: give only one of {names}")
        elif present and present[0] != "value":
            found[name] = (present[0], given[present[0]])
    if problems:
        raise ConfigError(problems, component="dispatch")
    return found


def resolve_references(environ: Mapping[str, str], session: Any) -> dict[str, str]:
    """The environment with every ``NAME_SECRET`` / ``NAME_PARAMETER`` replaced by ``NAME`` = its value.
    ``session`` is a boto3 session; a client is made only for the kinds in use."""
    resolved = dict(environ)
    wanted = references(environ)
    if not wanted:
        return resolved
    from handlers.dispatch._aws_errors import aws_errors  # noqa: PLC0415  (botocore: only when references exist)

    clients: dict[str, Any] = {}
    for name, (kind, reference) in wanted.items():
        if kind == "secret":
            client = clients.get(kind) or clients.setdefault(kind, session.client("secretsmanager"))
            with aws_errors(f"Secrets Manager GetSecretValue ({name}{SECRET_SUFFIX})"):
                value = str(client.get_secret_value(SecretId=reference)["SecretString"])
        else:
            client = clients.get(kind) or clients.setdefault(kind, session.client("ssm"))
            with aws_errors(f"SSM GetParameter ({name}{PARAMETER_SUFFIX})"):
                value = str(client.get_parameter(Name=reference, WithDecryption=True)["Parameter"]["Value"])
        resolved[name] = value.strip()
        resolved.pop(name + (SECRET_SUFFIX if kind == "secret" else PARAMETER_SUFFIX), None)
    return resolved

"""RunPod's management objects (templates and serverless endpoints) as the public REST API v1 shapes them
(``https://rest.runpod.io/v1``, its OpenAPI document: ``TemplateCreateInput``/``TemplateUpdateInput``/``Template``,
``EndpointCreateInput``/``EndpointUpdateInput``/``Endpoint``). Pure: validation, defaults and updates, no I/O.

Fields and defaults follow the published schema. Where the schema is silent the emulator chooses, and says so:
template names are unique per account (RunPod's docs say creating a duplicate fails); an endpoint must name an
existing template; ``flashboot`` is accepted on input and, as in the published ``Endpoint`` object, never returned.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DATA_CENTER_IDS",
    "GPU_TYPE_IDS",
    "Management",
    "ManagementError",
    "NotFoundError",
]

#: ``gpuTypeIds`` items allowed by the published schema.
GPU_TYPE_IDS: Final = frozenset(
    {
        "NVIDIA GeForce RTX 4090", "NVIDIA A40", "NVIDIA RTX A5000", "NVIDIA GeForce RTX 5090",
        "NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 3090", "NVIDIA RTX A4500", "NVIDIA L40S", "NVIDIA H200",
        "NVIDIA L4", "NVIDIA RTX 6000 Ada Generation", "NVIDIA A100-SXM4-80GB", "NVIDIA RTX 4000 Ada Generation",
        "NVIDIA RTX A6000", "NVIDIA A100 80GB PCIe", "NVIDIA RTX 2000 Ada Generation", "NVIDIA RTX A4000",
        "NVIDIA RTX PRO 6000 Blackwell Server Edition", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA L40",
        "NVIDIA B200", "NVIDIA GeForce RTX 3080 Ti", "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
        "NVIDIA GeForce RTX 3080", "NVIDIA GeForce RTX 3070", "AMD Instinct MI300X OAM",
        "NVIDIA GeForce RTX 4080 SUPER", "Tesla V100-PCIE-16GB", "Tesla V100-SXM2-32GB",
        "NVIDIA RTX 5000 Ada Generation", "NVIDIA GeForce RTX 4070 Ti", "NVIDIA RTX 4000 SFF Ada Generation",
        "NVIDIA GeForce RTX 3090 Ti", "NVIDIA RTX A2000", "NVIDIA GeForce RTX 4080", "NVIDIA A30",
        "NVIDIA GeForce RTX 5080", "Tesla V100-FHHL-16GB", "NVIDIA H200 NVL", "Tesla V100-SXM2-16GB",
        "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "NVIDIA A5000 Ada", "Tesla V100-PCIE-32GB",
        "NVIDIA  RTX A4500", "NVIDIA  A30", "NVIDIA GeForce RTX 3080TI", "Tesla T4", "NVIDIA RTX A30",
    }
)  # fmt: skip
#: The schema's default ``dataCenterIds`` (every data center).
DATA_CENTER_IDS: Final = (
    "EU-RO-1", "CA-MTL-1", "EU-SE-1", "US-IL-1", "EUR-IS-1", "EU-CZ-1", "US-TX-3", "EUR-IS-2", "US-KS-2", "US-GA-2",
    "US-WA-1", "US-TX-1", "CA-MTL-3", "EU-NL-1", "US-TX-4", "US-CA-2", "US-NC-1", "OC-AU-1", "US-DE-1", "EUR-IS-3",
    "CA-MTL-2", "AP-JP-1", "EUR-NO-1", "EU-FR-1", "US-KS-3", "US-GA-1",
)  # fmt: skip


class ManagementError(ValueError):
    """Invalid input: HTTP 400."""


class NotFoundError(LookupError):
    """No such template or endpoint: HTTP 404."""


# field -> (type, create-only); types are checked the way a JSON schema would.
_TEMPLATE_FIELDS: Final[dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "name": (str, False),
    "imageName": (str, False),
    "category": (str, True),
    "containerDiskInGb": (int, False),
    "containerRegistryAuthId": (str, False),
    "dockerEntrypoint": (list, False),
    "dockerStartCmd": (list, False),
    "env": (dict, False),
    "isPublic": (bool, False),
    "isServerless": (bool, True),
    "ports": (list, False),
    "readme": (str, False),
    "volumeInGb": (int, False),
    "volumeMountPath": (str, False),
}
_ENDPOINT_FIELDS: Final[dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "name": (str, False),
    "templateId": (str, False),
    "allowedCudaVersions": (list, False),
    "computeType": (str, True),
    "cpuFlavorIds": (list, False),
    "dataCenterIds": (list, False),
    "executionTimeoutMs": (int, False),
    "flashboot": (bool, False),
    "gpuCount": (int, False),
    "gpuTypeIds": (list, False),
    "idleTimeout": (int, False),
    "minCudaVersion": (str, False),
    "networkVolumeId": (str, False),
    "networkVolumeIds": (list, False),
    "scalerType": (str, False),
    "scalerValue": (int, False),
    "vcpuCount": (int, False),
    "workersMax": (int, False),
    "workersMin": (int, False),
}


def _random_id(length: int) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _check(body: Any, fields: dict[str, tuple[type | tuple[type, ...], bool]], *, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ManagementError("request body must be a JSON object")
    problems = []
    for key, value in body.items():
        if key not in fields:
            problems.append(f"{key}: unknown field")
            continue
        kind, create_only = fields[key]
        if create_only and not creating:
            problems.append(f"{key}: cannot be changed after creation")
        elif value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            problems.append(f"{key}: must be {getattr(kind, '__name__', kind)}")
    if problems:
        raise ManagementError("; ".join(problems))
    return {k: v for k, v in body.items() if v is not None}


@dataclass
class Management:
    """The account's templates and endpoints. ``clock`` gives ``createdAt``."""

    user_id: str = "user_local"
    clock: Any = time.time
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    flashboot: dict[str, bool] = field(default_factory=dict)  # write-only in the API; kept for the emulator

    # ---------------------------------------------------------------------------------------------- templates

    def _validate_template(self, merged: dict[str, Any], template_id: str | None) -> None:
        if not merged.get("name") or not merged.get("imageName"):
            raise ManagementError("name and imageName are required")
        if merged.get("category", "NVIDIA") not in ("NVIDIA", "AMD", "CPU"):
            raise ManagementError("category: must be one of NVIDIA, AMD, CPU")
        if merged.get("containerDiskInGb", 50) < 1:
            raise ManagementError("containerDiskInGb: must be at least 1")
        env = merged.get("env", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ManagementError("env: must map names to strings")
        for other in self.templates.values():
            if other["name"] == merged["name"] and other["id"] != template_id:
                raise ManagementError(f"a template named {merged['name']!r} already exists")

    def create_template(self, body: Any) -> dict[str, Any]:
        given = _check(body, _TEMPLATE_FIELDS, creating=True)
        template = {
            "category": "NVIDIA",
            "containerDiskInGb": 50,
            "dockerEntrypoint": [],
            "dockerStartCmd": [],
            "earned": 0,
            "env": {},
            "id": _random_id(10),
            "isPublic": False,
            "isRunpod": False,
            "isServerless": False,
            "ports": [],
            "readme": "",
            "runtimeInMin": 0,
            "volumeInGb": 20,
            "volumeMountPath": "/workspace",
            **given,
        }
        self._validate_template(template, None)
        self.templates[template["id"]] = template
        return dict(template)

    def template(self, template_id: str) -> dict[str, Any]:
        if template_id not in self.templates:
            raise NotFoundError(f"template {template_id} not found")
        return dict(self.templates[template_id])

    def update_template(self, template_id: str, body: Any) -> dict[str, Any]:
        current = self.template(template_id)
        merged = {**current, **_check(body, _TEMPLATE_FIELDS, creating=False)}
        self._validate_template(merged, template_id)
        self.templates[template_id] = merged
        return dict(merged)

    def delete_template(self, template_id: str) -> None:
        self.template(template_id)
        if any(e["templateId"] == template_id for e in self.endpoints.values()):
            raise ManagementError("the template is in use by an endpoint")
        del self.templates[template_id]

    # ---------------------------------------------------------------------------------------------- endpoints

    def _validate_endpoint(self, merged: dict[str, Any]) -> None:
        if merged.get("templateId") not in self.templates:
            raise ManagementError(f"templateId: template {merged.get('templateId')!r} not found")
        unknown = [g for g in merged.get("gpuTypeIds", []) if g not in GPU_TYPE_IDS]
        if unknown:
            raise ManagementError(f"gpuTypeIds: unknown GPU type(s) {unknown}")
        regions = [d for d in merged.get("dataCenterIds", []) if d not in DATA_CENTER_IDS]
        if regions:
            raise ManagementError(f"dataCenterIds: unknown data center(s) {regions}")
        if merged["scalerType"] not in ("QUEUE_DELAY", "REQUEST_COUNT"):
            raise ManagementError("scalerType: must be QUEUE_DELAY or REQUEST_COUNT")
        if not 1 <= merged["idleTimeout"] <= 3600:
            raise ManagementError("idleTimeout: must be within 1..3600")
        if merged["scalerValue"] < 1 or merged["gpuCount"] < 1:
            raise ManagementError("scalerValue and gpuCount must be at least 1")
        if not 0 <= merged["workersMin"] <= merged["workersMax"]:
            raise ManagementError("workersMin must be within 0..workersMax")
        if merged["executionTimeoutMs"] < 5_000:
            raise ManagementError("executionTimeoutMs: must be at least 5000")

    def create_endpoint(self, body: Any) -> dict[str, Any]:
        given = _check(body, _ENDPOINT_FIELDS, creating=True)
        flashboot = bool(given.pop("flashboot", True))
        endpoint: dict[str, Any] = {
            "computeType": "GPU",
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.clock())),
            "dataCenterIds": list(DATA_CENTER_IDS),
            "env": {},
            "executionTimeoutMs": 600_000,
            "gpuCount": 1,
            "gpuTypeIds": ["NVIDIA GeForce RTX 4090"],
            "id": _random_id(14),
            "idleTimeout": 5,
            "name": "",
            "scalerType": "QUEUE_DELAY",
            "scalerValue": 4,
            "userId": self.user_id,
            "version": 0,
            "workersMax": 3,
            "workersMin": 0,
            **given,
        }
        self._validate_endpoint(endpoint)
        self.endpoints[endpoint["id"]] = endpoint
        self.flashboot[endpoint["id"]] = flashboot
        return self.endpoint(endpoint["id"])

    def endpoint(self, endpoint_id: str, *, include_template: bool = False) -> dict[str, Any]:
        if endpoint_id not in self.endpoints:
            raise NotFoundError(f"endpoint {endpoint_id} not found")
        shown = dict(self.endpoints[endpoint_id])
        if include_template:
            shown["template"] = self.template(shown["templateId"])
        return shown

    def update_endpoint(self, endpoint_id: str, body: Any) -> dict[str, Any]:
        current = self.endpoint(endpoint_id)
        given = _check(body, _ENDPOINT_FIELDS, creating=False)
        if "flashboot" in given:
            self.flashboot[endpoint_id] = bool(given.pop("flashboot"))
        merged = {**current, **given}
        self._validate_endpoint(merged)
        if merged != current:
            merged["version"] = current["version"] + 1
        self.endpoints[endpoint_id] = merged
        return self.endpoint(endpoint_id)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self.endpoint(endpoint_id)
        del self.endpoints[endpoint_id]
        self.flashboot.pop(endpoint_id, None)

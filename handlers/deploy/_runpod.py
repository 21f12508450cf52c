"""``deploy runpod``: a serverless template and an endpoint, created or updated by name through RunPod's public
management REST API (``https://rest.runpod.io/v1``; field names as its OpenAPI document spells them).

:func:`plan` is pure: given what exists (the lists ``GET /templates`` and ``GET /endpoints`` return) and what is
wanted, it says what to create or patch, field by field. :class:`RunPodRest` is the HTTP side (httpx), and
:func:`apply` runs a plan. Running it twice changes nothing the second time, and the plan says so.

``flashboot`` is write-only in RunPod's API (the ``Endpoint`` object does not return it): it is sent when the
endpoint is created and with every update that sends anything, and a plan can never show it as drifted.
Environment values are never printed (they may hold keys); the plan names the variables that change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DEFAULT_REST_URL",
    "EndpointSpec",
    "Plan",
    "RunPodRest",
    "RunPodRestError",
    "Step",
    "TemplateSpec",
    "apply",
    "plan",
]

DEFAULT_REST_URL: Final = "https://rest.runpod.io/v1"
_FB_SUFFIX: Final = " -fb"  # older GraphQL-created endpoints carry FlashBoot in the name


class RunPodRestError(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    image_name: str
    container_disk_gb: int = 50
    env: Mapping[str, str] = field(default_factory=dict)
    volume_mount_path: str = "/runpod-volume"
    container_registry_auth_id: str | None = None

    def body(self) -> dict[str, Any]:
        """The fields an update may send (``TemplateUpdateInput``)."""
        body: dict[str, Any] = {
            "name": self.name,
            "imageName": self.image_name,
            "containerDiskInGb": self.container_disk_gb,
            "env": dict(self.env),
            "volumeMountPath": self.volume_mount_path,
            # Serverless templates have no pod volume; a network volume is attached on the endpoint.
            "volumeInGb": 0,
        }
        if self.container_registry_auth_id:
            body["containerRegistryAuthId"] = self.container_registry_auth_id
        return body

    def create_body(self) -> dict[str, Any]:
        return {**self.body(), "isServerless": True, "category": "NVIDIA"}


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    gpu_type_ids: Sequence[str]
    workers_min: int = 0
    workers_max: int = 3
    idle_timeout_s: int = 5
    flashboot: bool = True
    execution_timeout_ms: int = 600_000
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: int = 4
    gpu_count: int = 1
    network_volume_id: str | None = None
    data_center_ids: Sequence[str] | None = None

    def body(self, template_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "templateId": template_id,
            "gpuTypeIds": list(self.gpu_type_ids),
            "gpuCount": self.gpu_count,
            "workersMin": self.workers_min,
            "workersMax": self.workers_max,
            "idleTimeout": self.idle_timeout_s,
            "executionTimeoutMs": self.execution_timeout_ms,
            "scalerType": self.scaler_type,
            "scalerValue": self.scaler_value,
        }
        if self.network_volume_id:
            body["networkVolumeId"] = self.network_volume_id
        if self.data_center_ids:
            body["dataCenterIds"] = list(self.data_center_ids)
        return body


@dataclass(frozen=True)
class Step:
    kind: str  # "template" | "endpoint"
    action: str  # "create" | "update" | "none"
    name: str
    resource_id: str | None
    body: dict[str, Any]
    changes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        where = f" ({self.resource_id})" if self.resource_id else ""
        if self.action == "none":
            return [f"{self.kind} {self.name!r}{where}: no changes"]
        head = f"{self.kind} {self.name!r}{where}: {self.action}"
        return [head, *(f"    {change}" for change in self.changes)]


@dataclass(frozen=True)
class Plan:
    template: Step
    endpoint: Step

    @property
    def changed(self) -> bool:
        return self.template.action != "none" or self.endpoint.action != "none"

    def lines(self) -> list[str]:
        lines = [*self.template.lines(), *self.endpoint.lines()]
        if not self.changed:
            lines.append("Nothing to do: the template and the endpoint already match.")
        return lines


def _show(name: str, value: Any) -> str:
    return f"{name}: {value!r}"


def _diff(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    changes: list[str] = []
    for key, value in wanted.items():
        if key == "env":
            old = current.get("env") or {}
            names = sorted({k for k in value if old.get(k) != value[k]} | {k for k in old if k not in value})
            changes.extend(
                f"env {name}: {'removed' if name not in value else 'added' if name not in old else 'changed'}"
                for name in names
            )
        elif current.get(key) != value:
            changes.append(f"{key}: {current.get(key)!r} -> {value!r}")
    return changes


def _find(items: Sequence[Mapping[str, Any]], name: str, kind: str) -> Mapping[str, Any] | None:
    found = [i for i in items if i.get("name") in (name, name + _FB_SUFFIX)]
    if len(found) > 1:
        ids = ", ".join(str(i.get("id")) for i in found)
        raise RunPodRestError(f"{len(found)} {kind}s are named {name!r} ({ids}): rename or delete all but one")
    return found[0] if found else None


def plan(
    template: TemplateSpec,
    endpoint: EndpointSpec,
    *,
    templates: Sequence[Mapping[str, Any]],
    endpoints: Sequence[Mapping[str, Any]],
) -> Plan:
    existing_template = _find(templates, template.name, "template")
    if existing_template is None:
        body = template.create_body()
        changes = [_show(k, v) for k, v in body.items() if k != "env"] + [
            f"env {k}: added" for k in sorted(template.env)
        ]
        template_step = Step("template", "create", template.name, None, body, tuple(changes))
        template_id = "<new template>"
    else:
        template_id = str(existing_template["id"])
        wanted = template.body()
        changes = _diff(existing_template, wanted)
        template_step = Step(
            "template", "update" if changes else "none", template.name, template_id, wanted, tuple(changes)
        )
    existing_endpoint = _find(endpoints, endpoint.name, "endpoint")
    if existing_endpoint is None:
        body = {**endpoint.body(template_id), "flashboot": endpoint.flashboot}
        endpoint_step = Step(
            "endpoint", "create", endpoint.name, None, body, tuple(_show(k, v) for k, v in body.items())
        )
    else:
        wanted = endpoint.body(template_id)
        wanted.pop("name")  # matched by name already (with or without the legacy " -fb")
        changes = _diff(existing_endpoint, wanted)
        body = {k: v for k, v in wanted.items() if existing_endpoint.get(k) != v}
        if changes:
            body["flashboot"] = endpoint.flashboot
        endpoint_step = Step(
            "endpoint",
            "update" if changes else "none",
            endpoint.name,
            str(existing_endpoint["id"]),
            body,
            tuple(changes),
        )
    return Plan(template_step, endpoint_step)


class RunPodRest:
    """The few management calls deploy needs. ``transport`` is for tests (an httpx transport)."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 30.0, transport: Any = None) -> None:
        import httpx  # noqa: PLC0415

        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RunPodRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        import httpx  # noqa: PLC0415

        attempts = 3 if method in ("GET", "PATCH") else 1  # a repeated POST could create twice
        for attempt in range(1, attempts + 1):
            try:
                response = self._client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                if attempt == attempts:
                    raise RunPodRestError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                continue
            if response.status_code >= 500 and attempt < attempts:
                continue
            break
        if response.status_code in (401, 403):
            raise RunPodRestError("RunPod refused the API key (RUNPOD_API_KEY)", status=response.status_code)
        if response.status_code >= 400:
            try:
                detail = response.json().get("error") or response.text
            except ValueError:
                detail = response.text
            raise RunPodRestError(
                f"{method} {path}: HTTP {response.status_code}: {detail}", status=response.status_code
            )
        return response.json() if response.content else None

    def templates(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/templates") or [])

    def endpoints(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/endpoints") or [])

    def create_template(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/templates", body))

    def update_template(self, template_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("PATCH", f"/templates/{template_id}", body))

    def create_endpoint(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/endpoints", body))

    def update_endpoint(self, endpoint_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("PATCH", f"/endpoints/{endpoint_id}", body))


def apply(steps: Plan, client: RunPodRest) -> tuple[str, str]:
    """Run the plan; returns (template id, endpoint id)."""
    template = steps.template
    if template.action == "create":
        template_id = str(client.create_template(template.body)["id"])
    else:
        template_id = str(template.resource_id)
        if template.action == "update":
            client.update_template(template_id, template.body)
    endpoint = steps.endpoint
    body = {**endpoint.body}
    if "templateId" in body:
        body["templateId"] = template_id
    if endpoint.action == "create":
        endpoint_id = str(client.create_endpoint(body)["id"])
    else:
        endpoint_id = str(endpoint.resource_id)
        if endpoint.action == "update":
            client.update_endpoint(endpoint_id, body)
    return template_id, endpoint_id

"""Each function's ``function.yaml``: its entry point and triggers, declared once.

The local runner and the deployment generators (Knative, OpenFaaS) both read these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from visitlens.errors import ConfigurationError

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
"""The repository's ``functions/`` folder (one sub-folder per function)."""


# Knative Serving's config-defaults ``max-revision-timeout-seconds`` (default 600): the webhook
# refuses a Service whose ``timeoutSeconds`` exceeds it (knative/docs
# docs/serving/configuration/config-defaults.md, "Max revision timeout seconds"; knative/serving
# pkg/apis/config/defaults.go). The charts do not change config-defaults: no function may ask more.
KNATIVE_MAX_TIMEOUT_S = 600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpTrigger(_Strict):
    kind: Literal["http"]
    path_prefixes: list[str] = Field(min_length=1, description="paths routed to the function")

    @field_validator("path_prefixes")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        if any(not p.startswith("/") for p in value):
            raise ValueError("path prefixes start with '/'")
        return value


class CloudEventTrigger(_Strict):
    """A Knative Trigger on the broker: exact-match filters on CloudEvent attributes."""

    kind: Literal["cloudevent"]
    broker: str = "default"
    filters: dict[str, str] = Field(description="e.g. {type: com.visitlens.face.detected.v2}")

    @field_validator("filters")
    @classmethod
    def _has_type(cls, value: dict[str, str]) -> dict[str, str]:
        if "type" not in value:
            raise ValueError("a CloudEvent trigger filters on 'type' at least")
        return value


class CronTrigger(_Strict):
    """A Knative PingSource / OpenFaaS cron-connector schedule."""

    kind: Literal["cron"]
    name: str = Field(pattern=r"^[a-z0-9-]{1,50}$")
    schedule: str
    timezone: str = "UTC"
    data: dict[str, object] = Field(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r}")
        return value


class BucketTrigger(_Strict):
    """MinIO bucket notification (MinIO's own event JSON), delivered as a CloudEvent."""

    kind: Literal["bucket"]
    bucket: str
    prefix: str = ""
    suffix: str = ""
    events: list[str] = Field(default_factory=lambda: ["s3:ObjectCreated:*"])


Trigger = Annotated[
    HttpTrigger | CloudEventTrigger | CronTrigger | BucketTrigger, Field(discriminator="kind")
]


class FunctionSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,40}$")
    target: str = Field(pattern=r"^[a-z_][a-z0-9_]*$", description="decorated Python function")
    signature: Literal["http", "cloudevent"]
    description: str = ""
    triggers: list[Trigger] = Field(min_length=1)
    publishes: list[str] = Field(
        default_factory=list,
        description="event types the function posts to K_SINK itself (a SinkBinding to the Broker)",
    )
    concurrency: int = Field(default=10, ge=1, le=1000, description="requests per instance")
    min_scale: int = Field(default=0, ge=0, le=100)
    max_scale: int = Field(default=10, ge=1, le=1000)
    timeout_s: int = Field(
        default=60, ge=1, le=KNATIVE_MAX_TIMEOUT_S,
        description="request timeout (Knative refuses a revision timeout above its "
        "max-revision-timeout-seconds, 600 s unless config-defaults is changed)",
    )  # fmt: skip
    folder: Path = Field(default=Path(), exclude=True)

    @property
    def source(self) -> Path:
        return self.folder / "main.py"


def load(folder: Path) -> FunctionSpec:
    path = folder / "function.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    try:
        spec = FunctionSpec.model_validate({**raw, "folder": folder})
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    if spec.name != folder.name:
        raise ConfigurationError(f"{path}: name {spec.name!r} differs from its folder")
    return spec


def discover(functions_dir: Path = FUNCTIONS_DIR) -> list[FunctionSpec]:
    """Every function under ``functions_dir`` (folders with a function.yaml), by name."""
    return [load(p.parent) for p in sorted(functions_dir.glob("*/function.yaml"))]

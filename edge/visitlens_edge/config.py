"""Edge configuration: a YAML file plus ``VISITLENS_EDGE_*`` environment variables (env wins).

Every field is documented and bounded; an invalid file is a readable error naming the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from visitlens.config import ModelSettings
from visitlens.vision.demographics import DEFAULT_CONFIDENCE_FLOOR

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
_CAMERA_NAME = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MotionSettings(_Strict):
    """Skip detection while the scene is static and nobody is being tracked."""

    enabled: bool = Field(default=True)
    pixel_threshold: int = Field(
        default=18, ge=1, le=255, description="grey-level change that counts as a moving pixel"
    )
    min_area: float = Field(
        default=0.002, gt=0, le=1, description="fraction of the (ROI) frame that must move"
    )
    background_rate: float = Field(
        default=0.05, gt=0, le=1, description="how fast the background model follows the scene"
    )


class Roi(_Strict):
    """A rectangle in fractions of the frame (0..1)."""

    x: Fraction = 0.0
    y: Fraction = 0.0
    width: Fraction = 1.0
    height: Fraction = 1.0

    @model_validator(mode="after")
    def _inside(self) -> Self:
        if self.width <= 0 or self.height <= 0:
            raise ValueError("width and height must be positive")
        if self.x + self.width > 1.0 + 1e-9 or self.y + self.height > 1.0 + 1e-9:
            raise ValueError("the rectangle must lie inside the frame")
        return self


class CameraSettings(_Strict):
    id: UUID = Field(description="the camera's id in visitlens (API: /sites/{site}/cameras)")
    name: str = Field(description="short local name (logs, metrics, track ids)")
    source: str = Field(
        description="rtsp://… | http(s)://… stream, 'usb:N' (device index), a video file, or a "
        "folder of images (read in name order)"
    )
    fps: float = Field(default=5.0, gt=0, le=60, description="frames processed per second")
    realtime: bool | None = Field(
        default=None,
        description="files/folders: pace at `fps` (True) or as fast as possible (False); "
        "None: live sources pace themselves, files run as fast as possible",
    )
    start_time: str | None = Field(
        default=None,
        description="files/folders: ISO time of the first frame (default: now); live: ignored",
    )
    roi: Roi | None = Field(default=None, description="only this part of the frame is analysed")
    masks: list[Roi] = Field(default_factory=list, description="parts of the frame to ignore")
    motion: MotionSettings = Field(default_factory=MotionSettings)
    reconnect_initial_s: float = Field(default=1.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600)
    open_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _names(self) -> Self:
        if not _CAMERA_NAME.match(self.name):
            raise ValueError("name: 1-32 letters, digits, '.', '_' or '-'")
        if not self.source.strip():
            raise ValueError("source must not be empty")
        return self

    @property
    def kind(self) -> Literal["stream", "usb", "file", "folder"]:
        lowered = self.source.lower()
        if lowered.startswith(("rtsp://", "rtsps://", "http://", "https://", "rtmp://")):
            return "stream"
        if lowered.startswith("usb:"):
            return "usb"
        return "folder" if Path(self.source).is_dir() else "file"

    @property
    def live(self) -> bool:
        return self.kind in ("stream", "usb")


class TrackingSettings(_Strict):
    iou_threshold: float = Field(default=0.2, gt=0, lt=1, description="IoU to continue a track")
    reid_similarity: float = Field(
        default=0.45,
        ge=-1,
        le=1,
        description="cosine similarity that resumes a briefly lost track (occlusion)",
    )
    lost_after_s: float = Field(default=1.0, gt=0, le=30, description="no face this long: lost")
    end_after_s: float = Field(
        default=2.5, gt=0, le=120, description="lost this long: the pass is over, send it"
    )
    max_duration_s: float = Field(
        default=120.0, ge=5, le=3600, description="a longer track is sent in segments"
    )
    best_shots: int = Field(default=3, ge=1, le=10, description="shots per event (best quality)")
    min_shot_interval_s: float = Field(
        default=0.3, ge=0, le=10, description="shots of one track at least this far apart"
    )
    min_frames: int = Field(default=2, ge=1, le=1000, description="shorter tracks are noise")


class StaffSettings(_Strict):
    enabled: bool = Field(default=True)
    threshold: float = Field(
        default=0.358,
        ge=-1,
        le=1,
        description="cosine similarity to a staff view (FAR 0.1 %); only until the first staff "
        "gallery arrives: the server's threshold comes with it and wins",
    )
    refresh_s: float = Field(default=300.0, ge=1, le=86_400, description="gallery poll interval")
    first_sync_wait_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="on a first start without a local gallery, cameras wait this long for it "
        "(so that staff are not counted as customers); afterwards they run without one",
    )


class DemographicsSettings(_Strict):
    """Gender and age band per pass, estimated on the device (docs/demographics.md)."""

    enabled: bool = Field(
        default=True,
        description="estimate and send each pass's gender label and age band (face.detected "
        "v3); off: v2 events without them. The tenant's own switch on the server also applies",
    )
    confidence_floor: float = Field(
        default=DEFAULT_CONFIDENCE_FLOOR,
        ge=0,
        le=1,
        description="a pass's gender is 'unknown' when |2p - 1| of its mean female probability "
        "is below this (0.5: p outside 0.25..0.75)",
    )


class SnapshotSettings(_Strict):
    enabled: bool = Field(default=True, description="upload a JPEG of each track's best shot")
    jpeg_quality: int = Field(default=85, ge=30, le=100)
    margin: float = Field(default=0.4, ge=0, le=2, description="context around the face box")


class QueueSettings(_Strict):
    dir: Path = Field(default=Path("var/edge"), description="SQLite queue and staff gallery")
    max_bytes: int = Field(
        default=2 * 1024**3,
        ge=1024 * 1024,
        description="disk budget; above it snapshots are dropped first (oldest first); events "
        "are never dropped: a queue over budget with no snapshot left raises the alarm",
    )
    hard_limit_bytes: int | None = Field(
        default=None,
        ge=1024 * 1024,
        description="refuse new events above this (SQLite reports the disk as full); default "
        "4 x max_bytes; a refused event is logged, counted and raises the alarm",
    )


class DeliverySettings(_Strict):
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=60.0, gt=0, le=3600)
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, le=600, description="on stop, keep delivering this long"
    )
    verify_tls: bool = Field(default=True)
    batch_max_events: int = Field(
        default=50,
        ge=1,
        le=100,
        description="with a backlog, send up to this many events as one CloudEvents batch "
        "(application/cloudevents-batch+json); 1: one event per request",
    )
    batch_max_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        le=4 * 1024 * 1024,
        description="a batch stops growing at this many bytes (the server takes up to 4 MiB)",
    )


class ApiSettings(_Strict):
    base_url: str = Field(
        description="the visitlens gateway, e.g. https://visitlens.example.com", min_length=8
    )
    events_path: str = Field(default="/v1/events", pattern=r"^/[A-Za-z0-9/_.-]*$")
    credentials_file: Path | None = Field(
        default=None, description="a file holding the worker's API key (vlk_…), mode 0600"
    )
    api_key: SecretStr | None = Field(
        default=None, description="the API key itself (prefer credentials_file)"
    )

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if (self.credentials_file is None) == (self.api_key is None):
            raise ValueError("give exactly one of credentials_file and api_key")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self

    def key(self) -> str:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        assert self.credentials_file is not None
        return self.credentials_file.read_text().strip()


class HealthSettings(_Strict):
    host: str = Field(default="127.0.0.1")
    port: int = Field(default=9108, ge=0, le=65535, description="0: any free port")


class LogSettings(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: Path | None = Field(default=None, description="rotating log file; None: stderr only")
    max_bytes: int = Field(default=10 * 1024**2, ge=64 * 1024)
    backups: int = Field(default=5, ge=0, le=100)


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VISITLENS_EDGE_", env_nested_delimiter="__", extra="forbid"
    )

    tenant_id: UUID
    site_id: UUID
    cameras: list[CameraSettings] = Field(min_length=1, max_length=32)
    api: ApiSettings
    models: ModelSettings = Field(default_factory=ModelSettings)
    demographics: DemographicsSettings = Field(default_factory=DemographicsSettings)
    models_dir: Path = Field(
        default=Path("var/models"), description="prepared models (visitlens models prepare)"
    )
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    staff: StaffSettings = Field(default_factory=StaffSettings)
    snapshots: SnapshotSettings = Field(default_factory=SnapshotSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    exit_when_done: bool = Field(
        default=False,
        description="stop once every file/folder source has ended and the queue is empty",
    )

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError("camera names must be unique")
        if len({c.id for c in self.cameras}) != len(self.cameras):
            raise ValueError("camera ids must be unique")
        return self

    @property
    def hard_limit(self) -> int:
        return self.queue.hard_limit_bytes or 4 * self.queue.max_bytes

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment over file: an operator fixes one value without editing the file.
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls)


class ConfigError(Exception):
    """The configuration is invalid; ``str()`` names every bad field."""


def load(path: Path | None) -> EdgeSettings:
    """Settings from ``path`` (YAML) and the environment; ConfigError names each bad field."""
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} not found")

    class FromFile(EdgeSettings):
        model_config = SettingsConfigDict(yaml_file=path)

    try:
        loaded = FromFile()
        # A plain EdgeSettings (picklable for the camera processes), values already resolved.
        return EdgeSettings.model_validate(dict(loaded))
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            lines.append(f"  {where}: {error['msg']}")
        raise ConfigError("invalid edge configuration:\n" + "\n".join(lines)) from None

"""Settings for every visitlens deployable, read once at start from the environment and files.

Only this module reads the process environment. Secrets may come from files: a directory of
one-file-per-secret (OpenFaaS ``/var/openfaas/secrets``, a mounted Kubernetes secret) is read
through ``secrets_dir``.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PLACEHOLDER_PREFIX = "dev-only-"
"""Secrets that start with this are placeholders: accepted in dev and test, refused in prod."""


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class DatabaseSettings(BaseModel):
    """PostgreSQL. Without ``url`` the embedded pgserver under ``data_dir`` is used."""

    url: SecretStr | None = Field(
        default=None,
        description="DSN of the owner role that runs migrations (DATABASE_URL). "
        "None: the embedded PostgreSQL started by `visitlens stack up`.",
    )
    app_url: SecretStr | None = Field(
        default=None,
        description="DSN the functions use: a non-owner role subject to row-level security. "
        "None: derived from `url` with `app_role` / `app_password`.",
    )
    name: str = Field(default="visitlens", description="Database name (embedded stack).")
    owner_role: str = Field(default="visitlens_owner", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_role: str = Field(default="visitlens_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_password: SecretStr = Field(default=SecretStr(PLACEHOLDER_PREFIX + "app-password"))
    pool_min_size: int = Field(default=1, ge=0, le=64)
    pool_max_size: int = Field(default=10, ge=1, le=256)
    statement_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)


class MilvusSettings(BaseModel):
    """Milvus. Without ``uri`` the embedded Milvus Lite server is used."""

    uri: str | None = Field(default=None, description="e.g. http://milvus:19530 (MILVUS_URI)")
    token: SecretStr | None = Field(default=None, description="user:password or API token")
    db_name: str = Field(default="default")
    index_type: str = Field(default="HNSW", description="HNSW, IVF_FLAT, FLAT, …")
    index_params: dict[str, int] = Field(
        default_factory=lambda: {"M": 16, "efConstruction": 200},
        description="build parameters of the index",
    )
    search_params: dict[str, int] = Field(
        default_factory=lambda: {"ef": 64}, description="search parameters (HNSW: ef ≥ top_k)"
    )
    num_partitions: int = Field(
        default=16, ge=1, le=1024, description="physical partitions the tenant key hashes into"
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    searches_per_filter: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Milvus searches of one tenant (one filter) at once per instance; searches "
        "arriving while they run wait and go together as one multi-vector call (no timer: an idle "
        "tenant's search goes at once). Milvus Lite pays ~140 ms per call at 100k vectors, "
        "whatever the batch",
    )
    search_batch_max_requests: int = Field(
        default=64, ge=1, le=4096, description="searches that may go together in one call"
    )
    flush_after_inserts: int = Field(
        default=2000,
        ge=0,
        le=1_000_000,
        description="seal the growing segment (in the background) after this many inserts, so "
        "new vectors get indexed; Milvus Lite searches unsealed rows by brute force in Python. "
        "0: never (Milvus standalone/cluster seals segments itself)",
    )


class S3Settings(BaseModel):
    """S3-compatible object store (MinIO in production, SeaweedFS in the embedded stack)."""

    endpoint: str | None = Field(
        default=None, description="host:port of MinIO/S3 (S3_ENDPOINT); None: embedded SeaweedFS"
    )
    access_key: SecretStr = Field(default=SecretStr(PLACEHOLDER_PREFIX + "access"))
    secret_key: SecretStr = Field(default=SecretStr(PLACEHOLDER_PREFIX + "secret-key"))
    secure: bool = Field(default=False, description="use HTTPS")
    region: str = Field(default="us-east-1")
    raw_bucket: str = Field(default="faces-raw", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    derived_bucket: str = Field(
        default="faces-derived", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    raw_retention_days: int = Field(
        default=30, ge=1, le=3650, description="raw snapshots expire after this many days"
    )
    public_endpoint: str | None = Field(
        default=None,
        description="host:port edge workers use to upload snapshots (presigned URLs); "
        "None: the same as endpoint",
    )
    presign_ttl_s: int = Field(
        default=300, ge=30, le=3600, description="lifetime of a presigned snapshot upload URL"
    )


class AuthSettings(BaseModel):
    """JWT signing (RS256). Private keys are PEM files named ``<kid>.pem`` in ``keys_dir``."""

    keys_dir: Path | None = Field(
        default=None,
        description="directory of <kid>.pem RSA private keys; None: <data_dir>/keys "
        "(a dev keypair is generated there on first run, never outside dev/test)",
    )
    active_kid: str | None = Field(
        default=None, description="kid that signs new tokens; None: the newest key file"
    )
    public_keys_dir: Path | None = Field(
        default=None,
        description="extra <kid>.pub.pem public keys still accepted (rotation, verify-only)",
    )
    issuer: str = Field(default="visitlens")
    audience: str = Field(default="visitlens-api")
    access_ttl_s: int = Field(default=900, ge=60, le=86_400)
    refresh_ttl_s: int = Field(default=30 * 86_400, ge=3_600, le=365 * 86_400)
    leeway_s: int = Field(default=30, ge=0, le=300)


class EventAuthSettings(BaseModel):
    """Who may deliver CloudEvents to a function, and how a function publishes its own.

    Deliveries (Broker/Trigger, PingSource, bucket notifications through the bridge) carry
    ``Authorization: Bearer <OIDC token>`` for the function's audience: Knative Eventing's sender
    identity (``authentication-oidc``) in a cluster, the local gateway's issuer in `visitlens dev`.
    Without an issuer every delivery is refused (401): events fail closed."""

    issuer: str | None = Field(
        default=None,
        description="OIDC issuer of delivery tokens (Knative: the cluster's service-account "
        "issuer, e.g. https://kubernetes.default.svc.cluster.local)",
    )
    jwks_url: str | None = Field(
        default=None, description="the issuer's JWK Set (e.g. <issuer>/openid/v1/jwks)"
    )
    jwks_file: Path | None = Field(
        default=None, description="the issuer's JWK Set as a mounted file (instead of jwks_url)"
    )
    audience: str | None = Field(
        default=None,
        description="this function's audience (Trigger.spec.subscriber.audience); None: "
        "visitlens-<function name>",
    )
    allowed_subjects: list[str] = Field(
        default_factory=list,
        description="if set, only these token subjects may deliver "
        "(e.g. system:serviceaccount:knative-eventing:mt-broker-filter)",
    )
    leeway_s: int = Field(default=30, ge=0, le=300)
    sink: str | None = Field(
        default=None, description="where the function publishes events (K_SINK: the Broker)"
    )
    publish_token_file: Path | None = Field(
        default=None,
        description="bearer token presented to the Broker when publishing (a projected "
        "service-account token with the Broker's audience, re-read at each use)",
    )
    minio_token: SecretStr | None = Field(
        default=None,
        description="the MinIO webhook's auth_token, checked by the bucket-notification bridge",
    )


class StackSettings(BaseModel):
    """Ports of the embedded stack; every server binds ``host``."""

    host: str = Field(default="127.0.0.1")
    milvus_port: int = Field(default=19530, ge=1024, le=65535)
    s3_port: int = Field(default=8333, ge=1024, le=65535)
    seaweed_port_base: int = Field(
        default=19400,
        ge=1024,
        le=65000,
        description="SeaweedFS master/volume/filer (and their gRPC ports) take base..base+5",
    )
    gateway_port: int = Field(default=8080, ge=1024, le=65535)
    function_port_base: int = Field(default=8100, ge=1024, le=65000)
    start_timeout_s: float = Field(default=60.0, gt=0, le=600)


class ModelSettings(BaseModel):
    """Face models. Prepared copies live in ``dir`` (default ``<data_dir>/models``)."""

    dir: Path | None = Field(default=None, description="prepared models; None: <data_dir>/models")
    recognizer: str = Field(
        default="sface-2021dec",
        description="model id of the embedder: 'sface-2021dec' or 'arcface-user' (see arcface_path)",
    )
    arcface_path: Path | None = Field(
        default=None,
        description="a user-supplied ArcFace ONNX file (112x112 RGB in, 512-D out); never a "
        "default: InsightFace weights are licensed for non-commercial research only",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime execution providers in order, e.g. CoreMLExecutionProvider",
    )
    intra_op_threads: int = Field(default=1, ge=0, le=64, description="0: onnxruntime decides")
    embedder_backend: Literal["auto", "onnxruntime", "opencv"] = Field(
        default="auto",
        description="auto: onnxruntime when a hardware provider from `providers` is available "
        "(CoreML, CUDA …), else OpenCV's DNN engine, which runs SFace ~1.8x faster than "
        "onnxruntime on one CPU thread (same embeddings, cosine 0.9999999)",
    )
    detector_score: float = Field(default=0.6, ge=0.05, le=0.99, description="YuNet score cut")
    detector_nms_iou: float = Field(default=0.3, ge=0.05, le=0.95)
    max_faces: int = Field(default=64, ge=1, le=5000)
    flip_augment: bool = Field(
        default=False,
        description="embed each face and its mirror image and average them: +0.1-0.3 % TAR at "
        "low FAR on LFW for twice the embedding time (see docs/benchmarks)",
    )


class IdentitySettings(BaseModel):
    """Identity decisions. Thresholds are cosine similarities calibrated by `make bench` on LFW
    all-vs-all pairs (SFace 2021dec): FAR 0.01 % → 0.415, FAR 0.1 % → 0.358 (docs/benchmarks)."""

    customer_link_threshold: float = Field(
        default=0.415,
        ge=-1,
        le=1,
        description="link a track to an auto-created customer at or above this (FAR 0.01 %): "
        "stricter, because a wrong link merges two people's visit histories",
    )
    staff_match_threshold: float = Field(
        default=0.358,
        ge=-1,
        le=1,
        description="recognise enrolled staff at or above this (FAR 0.1 %): enrolment photos are "
        "good, and missing a staff member inflates the customer count",
    )
    top_k: int = Field(default=10, ge=1, le=100, description="gallery candidates per shot")
    max_views_per_person: int = Field(
        default=8, ge=1, le=64, description="embeddings kept per person (diverse, good views)"
    )
    min_view_quality: float = Field(default=0.35, ge=0, le=1)
    target_false_link_rate: float = Field(
        default=0.002,
        gt=0,
        le=0.1,
        description="accepted share of new visitors wrongly linked to someone in the tenant's "
        "gallery (open-set FPIR); the link threshold rises with the gallery to hold it. A wrong "
        "link drags the person's later passes along, so 0.2 % of new visitors keeps wrongly "
        "linked passes under 0.5 % (ADR 0012)",
    )
    target_false_staff_rate: float = Field(
        default=0.002,
        gt=0,
        le=0.1,
        description="accepted share of customer passes taken for staff; the staff threshold "
        "rises with the staff gallery to hold it (ADR 0012)",
    )
    false_match_at_link: float = Field(
        default=9.35e-5,
        gt=0,
        lt=1,
        description="measured chance that one stranger-vs-view comparison reaches "
        "customer_link_threshold: SFace's impostor tail fitted on the calibration half of "
        "identity_split.csv alone (make bench, results.scale.tail.per_view; all of LFW gave "
        "9.1e-5, but the benchmarks report on the evaluation half and must not have seen it)",
    )
    false_match_decades_per_unit: float = Field(
        default=18.93,
        gt=0,
        le=200,
        description="how fast that chance falls as the threshold rises: decades per unit of "
        "cosine similarity (the same calibration-half fit; all of LFW gave 19.8)",
    )
    max_clock_skew_s: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="an event may lie this far in the future (edge clocks drift); later: 422",
    )
    max_pass_s: int = Field(
        default=7200,
        ge=60,
        le=86_400,
        description="longest pass one event may describe (the edge sends long stays in "
        "segments of at most an hour); longer: 422",
    )
    view_diversity: float = Field(
        default=0.92,
        ge=0,
        le=1,
        description="a new view is kept only if its cosine to every kept view is below this",
    )
    group_max_events: int = Field(
        default=64,
        ge=1,
        le=1_000,
        description="single events of a tenant arriving while its groups are busy are worked "
        "together, one gallery search and one transaction, up to this many (group commit)",
    )
    groups_per_tenant: int = Field(
        default=2,
        ge=1,
        le=64,
        description="groups of one tenant's single events worked at once per instance (one "
        "searching the gallery while another writes); an idle tenant's event starts at once",
    )


class HttpSettings(BaseModel):
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=64 * 1_048_576)
    max_upload_bytes: int = Field(
        default=10 * 1_048_576, ge=1_024, le=256 * 1_048_576, description="image uploads"
    )
    page_size_default: int = Field(default=50, ge=1, le=1_000)
    page_size_max: int = Field(default=500, ge=1, le=10_000)
    rate_limit_tenant: str | None = Field(
        default="1200/minute",
        description="requests per tenant (limits notation, e.g. '1200/minute'); None: off",
    )
    rate_limit_api_key: str | None = Field(
        default="300/minute", description="requests per API key (an edge worker); None: off"
    )
    rate_limit_tenants: dict[str, str] = Field(
        default_factory=dict, description="per-tenant overrides: {tenant_id: '5000/minute'}"
    )
    rate_limit_login_account: str = Field(
        default="10/minute", description="token requests per account (password guessing)"
    )
    rate_limit_login_address: str = Field(
        default="60/minute", description="token requests per client address"
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="peers whose X-Forwarded-For is believed (the gateway, the ingress)",
    )
    password_hash_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="argon2 hashes computed at once per instance, off the event loop",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="where counters live: memory:// (per instance) or redis://host:6379 "
        "(shared by every instance of every function)",
    )


class RetentionSettings(BaseModel):
    """The purge's time budget. Knative refuses a revision timeout above its
    ``max-revision-timeout-seconds`` (600 s by default), so each hourly tick stops starting
    tenants once ``budget_s`` is spent and the rest wait for the next tick."""

    budget_s: int = Field(
        default=480, ge=1, le=3_000,
        description="a purge tick starts no tenant after this many seconds (below the timeout)",
    )  # fmt: skip
    every_h: int = Field(
        default=20, ge=1, le=168,
        description="a tenant is due again this many hours after its last finished purge",
    )  # fmt: skip


class MetricsSettings(BaseModel):
    port: int = Field(
        default=0, ge=0, le=65_535, description="Prometheus /metrics port of a function; 0: off"
    )
    host: str = Field(
        default="127.0.0.1", description="its address (0.0.0.0 in a pod, guarded by policy)"
    )


class Settings(BaseSettings):
    """One settings object per process, validated at start."""

    model_config = SettingsConfigDict(
        env_prefix="VISITLENS_",
        env_nested_delimiter="__",
        extra="forbid",
        secrets_dir=None,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Secrets as files, two ways: a group's JSON (``visitlens_database`` holding
        ``{"app_password": …}``) or one setting per file (``visitlens_database__url``: a key of
        an operator's secret, such as CloudNativePG's ``uri``, mounted as it is)."""
        nested = NestedSecretsSettingsSource(file_secret_settings, secrets_dir_missing="error")
        return init_settings, env_settings, dotenv_settings, nested

    env: Environment = Field(default=Environment.DEV)
    data_dir: Path = Field(default=Path(".visitlens"), description="all embedded-stack state")
    log_level: Annotated[str, Field(pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    log_format: Literal["text", "json"] = "text"
    """json: one JSON object per line with the event and trace ids (a cluster's log pipeline)."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    milvus: MilvusSettings = Field(default_factory=MilvusSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    events: EventAuthSettings = Field(default_factory=EventAuthSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="after")
    def _enforce_real_secrets(self) -> Self:
        """Outside dev/test a placeholder secret or a generated key is a start-up error."""
        if self.env is not Environment.PROD:
            return self
        placeholders = [
            name
            for name, value in (
                ("database.app_password", self.database.app_password),
                ("s3.access_key", self.s3.access_key),
                ("s3.secret_key", self.s3.secret_key),
            )
            if value.get_secret_value().startswith(PLACEHOLDER_PREFIX)
        ]
        if placeholders:
            raise ValueError(f"placeholder secrets are not allowed in prod: {placeholders}")
        if self.auth.keys_dir is None:
            raise ValueError("auth.keys_dir must be set in prod (no generated dev keys)")
        if self.database.url is None and self.database.app_url is None:
            raise ValueError("database.url or database.app_url must be set in prod")
        return self

    @property
    def keys_dir(self) -> Path:
        return self.auth.keys_dir or self.data_dir / "keys"

    @property
    def models_dir(self) -> Path:
        return self.models.dir or self.data_dir / "models"


_WELL_KNOWN_ALIASES = {
    # The names operators already use for these services; VISITLENS_* wins when both are set.
    "DATABASE_URL": ("VISITLENS_DATABASE__URL", "database", "url"),
    "MILVUS_URI": ("VISITLENS_MILVUS__URI", "milvus", "uri"),
    "S3_ENDPOINT": ("VISITLENS_S3__ENDPOINT", "s3", "endpoint"),
    "K_SINK": ("VISITLENS_EVENTS__SINK", "events", "sink"),
}
_SECRETS_DIR_VAR = "VISITLENS_SECRETS_DIR"


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings of this process (the environment is only read).

    ``DATABASE_URL``, ``MILVUS_URI`` and ``S3_ENDPOINT`` are honoured as aliases. Secrets are
    read from ``$VISITLENS_SECRETS_DIR`` (one file per setting group, e.g. ``visitlens_database``
    holding ``{"app_password": ...}``).
    """
    merged: dict[str, Any] = {}
    for alias, (name, group, field) in _WELL_KNOWN_ALIASES.items():
        if alias in os.environ and name not in os.environ:
            merged.setdefault(group, {})[field] = os.environ[alias]
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    secrets_dir = os.environ.get(_SECRETS_DIR_VAR)
    if secrets_dir:
        return Settings(_secrets_dir=secrets_dir, **merged)
    return Settings(**merged)

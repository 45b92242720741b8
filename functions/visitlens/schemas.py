"""Request and response bodies of the HTTP API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, ClassVar, Literal
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    RootModel,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from visitlens.auth.principal import Role
from visitlens.validation import MIN_PASSWORD_LENGTH, Instant

Name = Annotated[str, Field(min_length=1, max_length=200)]
Slug = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="lower-case, URL-safe")
]
RetentionDays = Annotated[int, Field(ge=1, le=3650, description="raw snapshots kept this long")]
VisitWindow = Annotated[
    int,
    Field(
        ge=60,
        le=86_400,
        description="a person seen again within this many seconds extends the visit",
    ),
]


EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
"""Dates a request may name: visitlens holds nothing before, and date arithmetic stays in range."""


class Input(BaseModel):
    """Bodies and queries: unknown fields are errors, strings are stripped, dates are bounded."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _plausible_dates(cls, value: object) -> object:
        if isinstance(value, date) and not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            raise ValueError(f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
        return value


class Patch(Input):
    """A partial update: a field left out keeps its value; an explicit null is refused unless the
    field may be empty (``nullable``), so a PATCH can never write NULL into a required column."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("must not be null (leave the field out to keep its value)")
        return value


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


@cache
def _time_zones() -> frozenset[str]:
    """The names the zoneinfo database knows (read once: the walk costs milliseconds)."""
    return frozenset(available_timezones()) | {"UTC"}


def _check_timezone(value: str | None) -> str | None:
    """Only a name the zoneinfo database lists is taken; ``ZoneInfo`` is never asked about
    another (an over-long name makes it raise ``OSError``: ENAMETOOLONG)."""
    if value is None or value in _time_zones():
        return value
    raise ValueError("unknown IANA time zone, e.g. 'Europe/Berlin'")


# --- auth ----------------------------------------------------------------------------------


REFRESH_COOKIE_FIELD = Field(
    default=False,
    description="a browser: the refresh token comes back as an HttpOnly, Secure, SameSite=Strict "
    "cookie scoped to /v1/auth/token, never in the body (script cannot read it)",
)


class PasswordGrant(Input):
    grant_type: Literal["password"]
    email: EmailStr
    password: SecretStr = Field(min_length=1, max_length=1024)
    refresh_cookie: bool = REFRESH_COOKIE_FIELD


class ApiKeyGrant(Input):
    grant_type: Literal["api_key"]
    api_key: SecretStr = Field(min_length=1, max_length=512)


class RefreshGrant(Input):
    grant_type: Literal["refresh_token"]
    refresh_token: SecretStr | None = Field(
        default=None, min_length=1, max_length=512,
        description="absent: the refresh cookie a browser sends",
    )  # fmt: skip
    refresh_cookie: bool = REFRESH_COOKIE_FIELD


class TokenRequest(
    RootModel[
        Annotated[PasswordGrant | ApiKeyGrant | RefreshGrant, Field(discriminator="grant_type")]
    ]
):
    """One of three grants, chosen by ``grant_type``."""


class TokenResponse(Output):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name
    expires_in: int = Field(description="seconds")
    refresh_token: str | None = Field(default=None, description="single use; rotated on refresh")
    role: Role
    tenant_id: UUID | None


class Me(Output):
    subject: UUID
    kind: str
    role: Role
    tenant_id: UUID | None
    site_ids: list[UUID]
    camera_ids: list[UUID]


# --- tenants -------------------------------------------------------------------------------


ReplayHorizon = Annotated[
    int,
    Field(
        ge=1,
        le=3650,
        description="events older than this many days are refused (edge replay after an outage)",
    ),
]


ReturningWithin = Annotated[
    int,
    Field(
        ge=1,
        le=3650,
        description="gallery scope: a pass is linked only to a customer seen within this many "
        "days (older customers are kept, found again only by an explicit search); the open-set "
        "threshold follows this scope's views, not the tenant's lifetime (docs/recognition.md)",
    ),
]


class TenantCreate(Input):
    slug: Slug
    name: Name
    raw_retention_days: RetentionDays = 30
    replay_horizon_days: ReplayHorizon = 30
    returning_within_days: ReturningWithin = 180
    demographics_enabled: bool = Field(
        default=True,
        description="store the edge's gender label and age band per sighting and person "
        "(off: nothing is stored; docs/demographics.md)",
    )


class TenantUpdate(Patch):
    name: Name | None = None
    raw_retention_days: RetentionDays | None = None
    replay_horizon_days: ReplayHorizon | None = None
    returning_within_days: ReturningWithin | None = None
    demographics_enabled: bool | None = None
    active: bool | None = Field(default=None, description="system admins only")


class TenantOut(Output):
    id: UUID
    slug: str
    name: str
    raw_retention_days: int
    replay_horizon_days: int
    returning_within_days: int
    demographics_enabled: bool
    active: bool
    created_at: datetime
    updated_at: datetime


# --- sites ---------------------------------------------------------------------------------


class SiteCreate(Input):
    name: Name
    timezone: str = Field(description="IANA time zone of the store; reports use it")
    address: str | None = Field(default=None, max_length=500)
    visit_window_s: VisitWindow = 1800

    _tz = field_validator("timezone")(_check_timezone)


class SiteUpdate(Patch):
    nullable = frozenset({"address"})
    name: Name | None = None
    timezone: str | None = None
    address: str | None = Field(default=None, max_length=500)
    visit_window_s: VisitWindow | None = None

    _tz = field_validator("timezone")(_check_timezone)


class SiteOut(Output):
    id: UUID
    tenant_id: UUID
    name: str
    timezone: str
    address: str | None
    visit_window_s: int
    created_at: datetime
    updated_at: datetime


# --- cameras -------------------------------------------------------------------------------

CameraKind = Literal["rtsp", "usb", "file", "folder"]


class CameraCreate(Input):
    name: Name
    kind: CameraKind = "rtsp"
    enabled: bool = True


class CameraUpdate(Patch):
    name: Name | None = None
    kind: CameraKind | None = None
    enabled: bool | None = None


class CameraOut(Output):
    id: UUID
    tenant_id: UUID
    site_id: UUID
    name: str
    kind: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    last_sighting_at: datetime | None = Field(
        default=None, description="the newest sighting this camera sent (the edge's health)"
    )


# --- users ---------------------------------------------------------------------------------

TenantRole = Literal["tenant_admin", "site_manager", "worker"]
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)]


class UserCreate(Input):
    email: EmailStr
    display_name: str = Field(default="", max_length=200)
    role: TenantRole
    site_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    password: Password


class UserUpdate(Patch):
    display_name: str | None = Field(default=None, max_length=200)
    role: TenantRole | None = None
    site_ids: list[UUID] | None = Field(default=None, max_length=1000)
    password: Password | None = None
    disabled: bool | None = None


class UserOut(Output):
    id: UUID
    tenant_id: UUID | None
    email: str
    display_name: str
    role: Role
    site_ids: list[UUID]
    disabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


# --- API keys ------------------------------------------------------------------------------


class ApiKeyCreate(Input):
    name: Name
    role: TenantRole = "worker"
    site_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    camera_ids: list[UUID] = Field(default_factory=list, max_length=1000)
    expires_at: Instant | None = Field(default=None, description="in the future; none: never")

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must lie in the future (a key that has expired is of no use)")
        return value


class ApiKeyOut(Output):
    id: UUID
    tenant_id: UUID
    name: str
    prefix: str
    role: Role
    site_ids: list[UUID]
    camera_ids: list[UUID]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    api_key: str = Field(description="the secret key: shown once, store it now")


class Health(Output):
    status: Literal["ok"]
    version: str

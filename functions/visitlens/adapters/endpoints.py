"""Where each service is: the configured URL, or what the embedded stack recorded at start."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url

from visitlens.config import Settings
from visitlens.errors import StackError

STATE_FILE = "stack.json"


@dataclass(slots=True)
class ServiceState:
    """What `stack up` recorded about one embedded server."""

    pid: int | None = None
    address: str = ""
    log: str = ""


@dataclass(slots=True)
class StackState:
    postgres: ServiceState | None = None
    postgres_socket_dir: str = ""
    milvus: ServiceState | None = None
    s3: ServiceState | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: Path) -> StackState:
        path = data_dir / STATE_FILE
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(
            postgres=ServiceState(**raw["postgres"]) if raw.get("postgres") else None,
            postgres_socket_dir=raw.get("postgres_socket_dir", ""),
            milvus=ServiceState(**raw["milvus"]) if raw.get("milvus") else None,
            s3=ServiceState(**raw["s3"]) if raw.get("s3") else None,
            extra=raw.get("extra", {}),
        )

    def save(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(data_dir / STATE_FILE)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Concrete addresses for clients. DSNs hold credentials: never log them."""

    owner_dsn: str
    app_dsn: str
    milvus_uri: str
    s3_endpoint: str

    def environment(self) -> dict[str, str]:
        """Environment for a function process, as a deployment would set it."""
        return {
            "VISITLENS_DATABASE__URL": self.owner_dsn,
            "VISITLENS_DATABASE__APP_URL": self.app_dsn,
            "VISITLENS_MILVUS__URI": self.milvus_uri,
            "VISITLENS_S3__ENDPOINT": self.s3_endpoint,
        }


def embedded_dsn(socket_dir: str, user: str, database: str, password: str | None = None) -> str:
    """A libpq-style DSN for the embedded PostgreSQL, which listens on a Unix socket only."""
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"postgresql://{auth}@/{database}?host={quote(socket_dir, safe='/')}"


def derive_app_dsn(owner_dsn: str, settings: Settings) -> str:
    """Same server and database as the owner DSN, logged in as the non-owner app role."""
    url = make_url(owner_dsn).set(
        username=settings.database.app_role,
        password=settings.database.app_password.get_secret_value(),
    )
    return url.render_as_string(hide_password=False)


def database_dsns(settings: Settings) -> tuple[str, str]:
    """(owner DSN for migrations, app DSN for the functions); the owner DSN may be empty
    where a deployment gives the functions only their own ``app_url``."""
    state = StackState.load(settings.data_dir)
    db = settings.database
    if db.url is not None:
        owner = db.url.get_secret_value()
    elif state.postgres is not None and state.postgres_socket_dir:
        owner = embedded_dsn(state.postgres_socket_dir, db.owner_role, db.name)
    elif db.app_url is not None:
        owner = ""
    else:
        raise StackError(
            "no PostgreSQL configured: set DATABASE_URL or run `visitlens stack up` "
            f"(data dir {settings.data_dir})"
        )
    app = db.app_url.get_secret_value() if db.app_url is not None else ""
    return owner, app or derive_app_dsn(owner, settings)


def milvus_uri(settings: Settings) -> str:
    state = StackState.load(settings.data_dir).milvus
    return _configured_or_embedded(settings.milvus.uri, state, "Milvus", "MILVUS_URI")


def s3_endpoint(settings: Settings) -> str:
    state = StackState.load(settings.data_dir).s3
    return _configured_or_embedded(settings.s3.endpoint, state, "S3", "S3_ENDPOINT")


def _configured_or_embedded(
    configured: str | None, embedded: ServiceState | None, what: str, variable: str
) -> str:
    address = configured or (embedded.address if embedded else None)
    if not address:
        raise StackError(f"no {what} configured: set {variable} or run `visitlens stack up`")
    return address


def resolve(settings: Settings) -> Endpoints:
    """Configured URLs win; anything not configured must come from a running embedded stack."""
    owner, app = database_dsns(settings)
    return Endpoints(
        owner_dsn=owner,
        app_dsn=app,
        milvus_uri=milvus_uri(settings),
        s3_endpoint=s3_endpoint(settings),
    )

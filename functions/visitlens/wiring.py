"""The composition root: the one place that knows which adapter serves which port.

Every function's ``main.py`` asks :func:`function` for its handler; the CLI asks for the clients
it needs. Everything here is built from :class:`~visitlens.config.Settings`, lazily (a warm
instance builds its clients on its first request, in a worker thread, and keeps them), and nothing
below this module builds a client of its own.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from threadpoolctl import threadpool_limits

from visitlens.adapters.broker import BrokerPublisher
from visitlens.adapters.endpoints import database_dsns, milvus_uri, s3_endpoint
from visitlens.adapters.event_tokens import EventTokenVerifier, function_audience
from visitlens.adapters.gallery import MilvusGallery
from visitlens.adapters.jwt_keys import KeyRing
from visitlens.adapters.logs import configure
from visitlens.adapters.metrics import observed, serve
from visitlens.adapters.object_store import S3ObjectStore
from visitlens.adapters.onnx_models import embedding_space, load_models
from visitlens.adapters.passwords import OffLoopHasher
from visitlens.adapters.postgres import Database
from visitlens.adapters.postgres_ingest import PostgresIngestStore
from visitlens.adapters.postgres_persons import PostgresPersonsStore
from visitlens.adapters.postgres_retention import PostgresPurgeStore
from visitlens.adapters.postgres_staff import PostgresStaffStore
from visitlens.adapters.ratelimit import LoginLimiter, RateLimiter
from visitlens.adapters.visit_feed import VisitFeed
from visitlens.auth.service import AuthService
from visitlens.config import Settings, load_settings
from visitlens.http import health
from visitlens.http.api.services import ApiServices
from visitlens.http.function import Endpoint, RoutedFunction, Served
from visitlens.http.headers import secured
from visitlens.http.router import Authenticator, Route, Router
from visitlens.http.routes import aggregate as aggregate_routes
from visitlens.http.routes import api as api_routes
from visitlens.http.routes import ingest as ingest_routes
from visitlens.http.routes import match as match_routes
from visitlens.http.routes import persons as person_routes
from visitlens.http.routes import purge as purge_routes
from visitlens.http.routes import staff as staff_routes
from visitlens.identity.ingest import IngestService
from visitlens.identity.matching import Matcher
from visitlens.lazy import Lazy
from visitlens.persons.erasure import Eraser
from visitlens.persons.merging import PersonMerger
from visitlens.persons.review import DuplicatesReview
from visitlens.ports import SystemClock
from visitlens.reports.aggregate import Aggregator
from visitlens.retention.purge import Purger
from visitlens.staff.enrollment import StaffEnrollment
from visitlens.tenancy import audit_chain, bootstrap
from visitlens.vision.pipeline import FacePipeline

S = TypeVar("S", bound=Served)

# --- the clients (one adapter per port) ---------------------------------------------------------


def database(settings: Settings, *, owner: bool = False) -> Database:
    """The functions' pool (the app role, under row-level security), or the owner's."""
    owner_dsn, app_dsn = database_dsns(settings)
    return Database(owner_dsn if owner else app_dsn, settings.database)


def password_hasher(settings: Settings) -> OffLoopHasher:
    return OffLoopHasher(settings.http.password_hash_concurrency)


def auth(settings: Settings, db: Database) -> tuple[KeyRing, AuthService]:
    keys = KeyRing.load(settings.keys_dir, settings.auth, settings.env)
    return keys, AuthService(db, keys, settings.auth, password_hasher(settings))


def gallery(settings: Settings) -> MilvusGallery:
    """The gallery of the configured recogniser's embedding space."""
    model_id, dim = embedding_space(settings)
    return MilvusGallery(milvus_uri(settings), settings.milvus, model_id, dim)


def object_store(settings: Settings, endpoint: str | None = None) -> S3ObjectStore:
    return S3ObjectStore.connect(settings.s3, endpoint or s3_endpoint(settings))


def face_pipeline(settings: Settings) -> FacePipeline:
    return FacePipeline(*load_models(settings))


def deliveries(settings: Settings, function_name: str) -> EventTokenVerifier:
    """Verifies the tokens of the Broker's, PingSource's and bucket bridge's deliveries."""
    return EventTokenVerifier(settings.events, function_audience(function_name))


# --- each function's services -------------------------------------------------------------------


def ingest_services(settings: Settings) -> ingest_routes.IngestServices:
    db = database(settings)
    faces = gallery(settings)
    return ingest_routes.IngestServices(
        settings, db, {"database": health.database(db), "gallery": faces.ping},
        auth(settings, db)[1], faces,
        IngestService(PostgresIngestStore(db), faces, settings.identity, SystemClock()),
        BrokerPublisher(settings.events),
    )  # fmt: skip


def match_services(settings: Settings) -> match_routes.MatchServices:
    db = database(settings)
    faces = gallery(settings)
    return match_routes.MatchServices(
        settings, {"database": health.database(db), "gallery": faces.ping}, auth(settings, db)[1],
        Matcher(faces, settings.identity, face_pipeline(settings)),
    )  # fmt: skip


def api_services(settings: Settings) -> ApiServices:
    db = database(settings)
    internal = s3_endpoint(settings)
    store = object_store(settings, internal)
    logins = LoginLimiter(settings.http)
    checks = {"database": health.database(db),
              "object_store": health.bucket(store, settings.s3.raw_bucket)}  # fmt: skip
    if not settings.http.rate_limit_storage.startswith("memory"):  # shared: Redis
        checks["rate_limits"] = health.advisory(
            logins.counters.shared_reachable, "shared counters unreachable: counted per instance"
        )
    return ApiServices(
        settings, db, checks, *auth(settings, db),
        object_store(settings, settings.s3.public_endpoint or internal), store,
        logins, VisitFeed(database_dsns(settings)[1]),
    )  # fmt: skip


def person_services(settings: Settings) -> person_routes.PersonServices:
    db = database(settings)
    faces = gallery(settings)
    store = object_store(settings)
    raw = settings.s3.raw_bucket
    persons = PostgresPersonsStore(db)
    return person_routes.PersonServices(
        db,
        {"database": health.database(db), "gallery": faces.ping,
         "object_store": health.bucket(store, raw)},
        auth(settings, db)[1], PersonMerger(persons, faces), Eraser(persons, faces, store, raw),
        store, raw, DuplicatesReview(persons),
    )  # fmt: skip


def staff_services(settings: Settings) -> staff_routes.StaffServices:
    db = database(settings)
    faces = gallery(settings)
    store = object_store(settings)
    enrollment = StaffEnrollment(
        PostgresStaffStore(db), faces, face_pipeline(settings), store,
        settings.s3.derived_bucket, settings.identity, settings.http.max_upload_bytes,
    )  # fmt: skip
    return staff_routes.StaffServices(
        settings, db,
        {"database": health.database(db), "gallery": faces.ping,
         "object_store": health.bucket(store, settings.s3.derived_bucket)},
        auth(settings, db)[1], enrollment,
    )  # fmt: skip


def aggregate_services(settings: Settings) -> aggregate_routes.AggregateServices:
    db = database(settings)
    return aggregate_routes.AggregateServices(
        db, {"database": health.database(db)}, auth(settings, db)[1], Aggregator(db)
    )


def purge_services(settings: Settings) -> purge_routes.PurgeServices:
    db = database(settings)
    store = object_store(settings)
    return purge_routes.PurgeServices(
        db,
        {"database": health.database(db),
         "object_store": health.bucket(store, settings.s3.raw_bucket)},
        Purger(
            PostgresPurgeStore(db), store, settings.s3.raw_bucket, SystemClock(),
            budget=timedelta(seconds=settings.retention.budget_s),
            every=timedelta(hours=settings.retention.every_h),
        ),
    )  # fmt: skip


# --- each function's handler --------------------------------------------------------------------


def _routed(
    settings: Settings, routes: list[Route], services: Lazy[S], **options: Any
) -> RoutedFunction[S]:
    router: Router[S] = Router(
        routes, services, _authenticator, settings.http.max_body_bytes, RateLimiter(settings.http)
    )
    return RoutedFunction(router, services, **options)


def _authenticator(services: Served) -> Authenticator:
    return services.auth


def _ingest(settings: Settings) -> Endpoint:
    return ingest_routes.IngestEndpoint(
        Lazy(lambda: ingest_services(settings)), deliveries(settings, "ingest")
    )


def _match(settings: Settings) -> Endpoint:
    return _routed(settings, match_routes.ROUTES, Lazy(lambda: match_services(settings)))


def _api(settings: Settings) -> Endpoint:
    return _routed(settings, api_routes.ROUTES, Lazy(lambda: api_services(settings)), live=False)


def _merge(settings: Settings) -> Endpoint:
    return _routed(settings, person_routes.MERGE_ROUTES, Lazy(lambda: person_services(settings)))


def _erase(settings: Settings) -> Endpoint:
    return _routed(settings, person_routes.ERASE_ROUTES, Lazy(lambda: person_services(settings)))


def _enroll_staff(settings: Settings) -> Endpoint:
    services = Lazy(lambda: staff_services(settings))
    bucket_events = staff_routes.BucketEvents(services, deliveries(settings, "enroll-staff"))
    return _routed(
        settings, staff_routes.ROUTES, services, events=bucket_events,
        event_route="/ (bucket events)",
    )  # fmt: skip


def _aggregate(settings: Settings) -> Endpoint:
    services = Lazy(lambda: aggregate_services(settings))
    events = aggregate_routes.AggregateEvents(services, deliveries(settings, "aggregate"))
    return _routed(settings, aggregate_routes.ROUTES, services, events=events)


def _purge(settings: Settings) -> Endpoint:
    return purge_routes.PurgeEndpoint(
        Lazy(lambda: purge_services(settings)), deliveries(settings, "purge")
    )


FUNCTIONS: Mapping[str, Callable[[Settings], Endpoint]] = {
    "aggregate": _aggregate,
    "api": _api,
    "enroll-staff": _enroll_staff,
    "erase": _erase,
    "ingest": _ingest,
    "match": _match,
    "merge": _merge,
    "purge": _purge,
}
"""Every function, by the name its folder and ``function.yaml`` give it."""


def function(
    name: str, settings: Settings | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The handler a function's ``main.py`` serves: settings, logging, the metrics endpoint and
    numpy's BLAS set up once per process, every request counted and timed.

    BLAS on one thread: a function's matrix products are small (a few vectors against a few
    thousand), and OpenBLAS's own threads, one per core, spin while they wait for the next one —
    measured under ingest load with ``perf``: 72 % of the function's CPU, three times its Python.
    Replicas, not BLAS threads, are how a function uses more cores.

    Everything alive once the handler is composed (the imported libraries: hundreds of thousands
    of objects) is moved out of the garbage collector's sight (``gc.freeze``): it lives as long as
    the process, and every full collection walked all of it — measured under ingest load, a
    stop-the-world pause of ~110 ms every 4-8 s, during which every request in flight waited."""
    settings = settings or load_settings()
    configure(settings.log_level, settings.log_format)
    threadpool_limits(limits=1, user_api="blas")
    serve(settings.metrics)
    handler = observed(name)(secured(FUNCTIONS[name](settings)))
    gc.freeze()
    return handler


# --- the command line's jobs --------------------------------------------------------------------


async def create_system_admin(settings: Settings, email: str, password: str) -> UUID:
    db = database(settings)
    try:
        return await bootstrap.create_system_admin(db, password_hasher(settings), email, password)
    finally:
        await db.close()


async def verify_audit_chains(settings: Settings) -> list[audit_chain.ChainReport]:
    db = database(settings, owner=True)
    try:
        return await audit_chain.verify(db)
    finally:
        await db.close()

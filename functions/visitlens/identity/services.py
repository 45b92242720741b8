"""The clients of one warm ingest/match instance, built once on first use; the reply event."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from visitlens.adapters.gallery import Gallery
from visitlens.adapters.jwt_keys import KeyRing
from visitlens.adapters.onnx_models import embedding_space
from visitlens.adapters.postgres import Database
from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.contracts import EventType, VisitRecordedV1
from visitlens.identity.ingest import IngestResult, IngestService, Track
from visitlens.stack.endpoints import database_dsns, milvus_uri

REPLY_SOURCE = "/functions/ingest"


@dataclass(slots=True)
class IngestServices:
    settings: Settings
    db: Database
    auth: AuthService
    gallery: Gallery
    ingest: IngestService


class LazyIngestServices:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._services: IngestServices | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> IngestServices:
        if self._services is None:
            async with self._lock:
                if self._services is None:
                    self._services = self._build()
        return self._services

    def _build(self) -> IngestServices:
        s = self._settings
        _, app_dsn = database_dsns(s)
        db = Database(app_dsn, s.database)
        keys = KeyRing.load(s.keys_dir, s.auth, s.env)
        model_id, dim = embedding_space(s)
        gallery = Gallery(milvus_uri(s), s.milvus, model_id, dim)
        return IngestServices(
            s, db, AuthService(db, keys, s.auth), gallery, IngestService(db, gallery, s.identity)
        )

    async def close(self) -> None:
        if self._services is not None:
            await self._services.db.close()
            await self._services.gallery.close()
            self._services = None


def visit_recorded(track: Track, result: IngestResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reply: attributes and data of a com.visitlens.visit.recorded.v1 event."""
    assert result.visit is not None and result.customer_id is not None
    visit = result.visit
    data = VisitRecordedV1(
        tenant_id=track.tenant_id,
        site_id=track.site_id,
        camera_id=track.camera_id,
        visit_id=visit.visit_id,
        customer_id=result.customer_id,
        sighting_id=result.sighting_id,
        started_at=visit.started_at,
        ended_at=visit.ended_at,
        is_new_customer=result.is_new_customer,
        opened_visit=visit.opened,
        similarity=result.similarity,
        dwell_s=(visit.ended_at - visit.started_at).total_seconds(),
        visit_count=max(1, visit.visit_count),
    )
    attributes = {
        "type": EventType.VISIT_RECORDED_V1.value,
        "source": REPLY_SOURCE,
        "id": f"visit-{result.sighting_id}",
        "subject": str(visit.visit_id),
        "dataschema": EventType.VISIT_RECORDED_V1.dataschema,
        "datacontenttype": "application/json",
    }
    return attributes, data.model_dump(mode="json")

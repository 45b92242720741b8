"""The clients of one warm ingest/match instance, built once on first use; the reply event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visitlens.adapters.gallery import Gallery
from visitlens.adapters.postgres import Database
from visitlens.auth.service import AuthService
from visitlens.auth.wiring import build_auth
from visitlens.config import Settings
from visitlens.contracts import EventType, VisitRecordedV1
from visitlens.identity.ingest import IngestResult, IngestService, Track
from visitlens.runtime.lazy import Lazy

REPLY_SOURCE = "/functions/ingest"


@dataclass(slots=True)
class IngestServices:
    settings: Settings
    db: Database
    auth: AuthService
    gallery: Gallery
    ingest: IngestService


def lazy_ingest_services(settings: Settings) -> Lazy[IngestServices]:
    def build() -> IngestServices:
        db, _, auth = build_auth(settings)
        gallery = Gallery.for_settings(settings)
        return IngestServices(
            settings, db, auth, gallery, IngestService(db, gallery, settings.identity)
        )

    return Lazy(build)


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

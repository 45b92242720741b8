"""Presigned uploads of edge snapshots into ``faces-raw``: the edge never holds S3 credentials.

The server chooses the key (``tenant/site/camera/date/track.jpg``) from the verified token and the
path, so a worker can only write below its own camera's prefix, and only for a few minutes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import Field
from starlette.responses import Response

from visitlens.errors import InvalidInput, NotFound
from visitlens.http.api.cameras import CAMERAS
from visitlens.http.api.scope import tenant_tx
from visitlens.http.api.services import ApiServices
from visitlens.http.router import Ctx
from visitlens.ports import ObjectStore
from visitlens.schemas import Input, Output
from visitlens.tenancy import audit
from visitlens.validation import Instant

TRACK_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class SnapshotRequest(Input):
    track_id: str = Field(pattern=TRACK_ID.pattern, description="the track the snapshot shows")
    captured_at: Instant = Field(description="time of the shot (the key's date, UTC)")


class SnapshotUpload(Output):
    key: str = Field(description="object key in the raw bucket; put it in the event")
    url: str = Field(description="presigned PUT URL (Content-Type image/jpeg)")
    expires_at: datetime


def snapshot_key(
    tenant_id: UUID, site_id: UUID, camera_id: UUID, captured_at: datetime, track_id: str
) -> str:
    day = captured_at.astimezone(UTC).date().isoformat()
    safe = track_id.replace(":", "-")
    return f"{tenant_id}/{site_id}/{camera_id}/{day}/{safe}.jpg"


async def presign_snapshot(ctx: Ctx[ApiServices]) -> SnapshotUpload:
    tenant_id: UUID = ctx.params["tenant_id"]
    site_id: UUID = ctx.params["site_id"]
    camera_id: UUID = ctx.params["camera_id"]
    ctx.principal.require_camera(site_id, camera_id)
    body = await ctx.body(SnapshotRequest)
    now = datetime.now(UTC)
    if body.captured_at > now + timedelta(minutes=5):
        raise InvalidInput("captured_at lies in the future", field="body.captured_at")
    async with tenant_tx(ctx, tenant_id) as conn:
        camera = await CAMERAS.get(conn, camera_id)
        if camera["site_id"] != site_id:
            raise InvalidInput("camera is not at this site", field="camera_id")
    settings = ctx.services.settings.s3
    key = snapshot_key(tenant_id, site_id, camera_id, body.captured_at, body.track_id)
    ttl = timedelta(seconds=settings.presign_ttl_s)
    url = await ctx.services.presigner.presign_put(settings.raw_bucket, key, ttl)
    return SnapshotUpload(key=key, url=url, expires_at=now + ttl)


# --- reading them back (the console's thumbnails) ----------------------------------------------

_VISIT_SHOT = (
    "SELECT v.site_id, (SELECT s.snapshot_key FROM sightings s WHERE s.tenant_id = v.tenant_id "
    "AND s.visit_id = v.id AND s.snapshot_key IS NOT NULL "
    "ORDER BY s.quality DESC NULLS LAST, s.captured_at DESC LIMIT 1) AS snapshot_key "
    "FROM visits v WHERE v.id = $1"
)
"""A visit's best retained shot: the sharpest, then the newest."""


async def read_snapshot(store: ObjectStore, bucket: str, key: str | None) -> bytes:
    """The JPEG under ``key``; 404 once retention removed it (or there never was one)."""
    if key is None:
        raise NotFound("no snapshot kept for this")
    try:
        return await store.read(bucket, key)
    except NotFound as exc:
        raise NotFound("the snapshot is past its retention") from exc


def snapshot_response(data: bytes, media_type: str = "image/jpeg") -> Response:
    """A face (a snapshot, a staff photo): private to this browser, never in a shared cache, never
    sniffed into a document that could run code."""
    return Response(
        data,
        media_type=media_type,
        headers={"cache-control": "private, max-age=300", "x-content-type-options": "nosniff"},
    )


async def visit_snapshot(ctx: Ctx[ApiServices]) -> Response:
    """The best retained snapshot of one visit (the live monitor's and timeline's thumbnail).

    Viewing a face is personal-data access: each read is audited."""
    tenant_id: UUID = ctx.params["tenant_id"]
    visit_id: UUID = ctx.params["visit_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        row = await conn.fetchrow(_VISIT_SHOT, visit_id)
        if row is None:
            raise NotFound(f"visit {visit_id} not found")
        ctx.principal.require_site(row["site_id"])
        if row["snapshot_key"] is not None:
            await audit.record(conn, ctx.principal, "snapshot.view", "visit", visit_id, tenant_id)
    store = ctx.services.store
    return snapshot_response(
        await read_snapshot(store, ctx.services.settings.s3.raw_bucket, row["snapshot_key"])
    )

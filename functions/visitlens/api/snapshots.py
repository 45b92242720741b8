"""Presigned uploads of edge snapshots into ``faces-raw``: the edge never holds S3 credentials.

The server chooses the key (``tenant/site/camera/date/track.jpg``) from the verified token and the
path, so a worker can only write below its own camera's prefix, and only for a few minutes.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import AwareDatetime, Field

from visitlens.api.cameras import CAMERAS
from visitlens.api.schemas import Input, Output
from visitlens.api.scope import tenant_tx
from visitlens.api.services import ApiServices
from visitlens.errors import InvalidInput
from visitlens.http.router import Ctx

TRACK_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class SnapshotRequest(Input):
    track_id: str = Field(pattern=TRACK_ID.pattern, description="the track the snapshot shows")
    captured_at: AwareDatetime = Field(description="time of the shot (the key's date, UTC)")


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
    url = await asyncio.to_thread(
        ctx.services.presigner.presigned_put_object, settings.raw_bucket, key, ttl
    )
    return SnapshotUpload(key=key, url=url, expires_at=now + ttl)

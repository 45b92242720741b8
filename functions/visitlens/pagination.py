"""Keyset pagination over ``(created_at, id)`` with an opaque cursor: stable under inserts."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from visitlens.errors import InvalidInput

T = TypeVar("T")

MAX_PAGE = 500


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description="items per page")
    cursor: str | None = Field(
        default=None, max_length=200, description="next_cursor of the previous page"
    )


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at end")


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), UUID(row_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput("invalid cursor", field="query.cursor") from exc

"""Read a request body once, within a size limit, and validate it into one pydantic model."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from visitlens.errors import InvalidInput, MalformedBody, PayloadTooLarge, UnsupportedMediaType
from visitlens.validation import from_validation_error, refuse_nul

M = TypeVar("M", bound=BaseModel)


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise MalformedBody("invalid Content-Length header") from exc
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_json_body(request: Request, model: type[M], limit: int) -> M:
    """400 for malformed JSON, 415 for another media type, 422 naming every bad field."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("expected Content-Type: application/json")
    raw = await read_limited(request, limit)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedBody("malformed JSON: nested too deeply") from exc
    refuse_nul(data, "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, "body") from exc


def parse_data(data: object, model: type[M], prefix: str = "data") -> M:
    """An already-decoded payload (a CloudEvent's data) as ``model``; 422 naming every field."""
    refuse_nul(data, prefix)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix) from exc


def parse_query(params: dict[str, str], model: type[M]) -> M:
    refuse_nul(params, "query")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise from_validation_error(exc, "query") from exc


async def read_upload(
    request: Request, limit: int, extra: tuple[str, ...] = (), field: str = "image"
) -> tuple[bytes, dict[str, str]]:
    """The multipart file ``field`` (at most ``limit`` bytes) and the named text fields.

    415 for another media type, 413 when the declared or actual size is over the limit, 422 when
    the file field is missing."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(f"send multipart/form-data with a file field named '{field}'")
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise PayloadTooLarge(f"upload of {declared} bytes exceeds the {limit}-byte limit")
    async with request.form(max_files=1, max_fields=4, max_part_size=limit) as form:
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise InvalidInput(f"a file field named '{field}' is required", field=field)
        data = await upload.read(limit + 1)
        fields = {name: str(form.get(name, "")) for name in extra}
    if len(data) > limit:
        raise PayloadTooLarge(f"{field} exceeds the {limit}-byte limit")
    return data, fields

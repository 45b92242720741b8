"""The object-store port over S3 (MinIO in production, SeaweedFS embedded), with the minio client.

The minio client is synchronous: every call runs in a worker thread. Its errors become the
kernel's (NotFound, PayloadTooLarge, TransientError); keys are logged, never object contents.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import timedelta

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from visitlens.config import S3Settings
from visitlens.errors import NotFound, PayloadTooLarge, TransientError
from visitlens.ports import StoredObject

_ABSENT = frozenset({"NoSuchKey", "NoSuchBucket"})


def minio_client(s3: S3Settings, endpoint: str) -> Minio:
    return Minio(
        endpoint,
        access_key=s3.access_key.get_secret_value(),
        secret_key=s3.secret_key.get_secret_value(),
        secure=s3.secure,
        region=s3.region,
    )


class S3ObjectStore:
    """:class:`visitlens.ports.ObjectStore` on one S3 endpoint."""

    def __init__(self, client: Minio) -> None:
        self._client = client

    @classmethod
    def connect(cls, s3: S3Settings, endpoint: str) -> S3ObjectStore:
        return cls(minio_client(s3, endpoint))

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        try:
            await asyncio.to_thread(
                self._client.put_object, bucket, key, io.BytesIO(data), len(data),
                content_type=content_type,
            )  # fmt: skip
        except (S3Error, HTTPError, OSError) as exc:
            raise TransientError(f"storing {key} failed: {_code(exc)}") from exc

    async def read(self, bucket: str, key: str, limit: int | None = None) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(bucket, key)
            try:
                return bytes(response.read(limit + 1 if limit is not None else None))
            finally:
                response.close()
                response.release_conn()

        try:
            data = await asyncio.to_thread(read)
        except S3Error as exc:
            if exc.code in _ABSENT:
                raise NotFound(f"object {key} not found") from exc
            raise TransientError(f"reading {key} failed: {exc.code}") from exc
        except (HTTPError, OSError) as exc:
            raise TransientError(f"reading {key} failed: {_code(exc)}") from exc
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(f"object exceeds the {limit}-byte limit")
        return data

    async def delete(self, bucket: str, keys: Sequence[str]) -> None:
        if not keys:
            return

        def delete() -> int:
            return len(list(self._client.remove_objects(bucket, [DeleteObject(k) for k in keys])))

        try:
            failed = await asyncio.to_thread(delete)
        except (S3Error, HTTPError, OSError) as exc:
            raise TransientError(f"deleting objects failed: {_code(exc)}") from exc
        if failed:
            raise TransientError(f"{failed} objects could not be deleted")

    async def list(self, bucket: str, prefix: str) -> list[StoredObject]:
        def scan() -> list[StoredObject]:
            return [
                StoredObject(str(item.object_name), item.last_modified)
                for item in self._client.list_objects(bucket, prefix=prefix, recursive=True)
            ]

        try:
            return await asyncio.to_thread(scan)
        except (S3Error, HTTPError, OSError) as exc:
            raise TransientError(f"listing {prefix} failed: {_code(exc)}") from exc

    async def presign_put(self, bucket: str, key: str, ttl: timedelta) -> str:
        url = await asyncio.to_thread(self._client.presigned_put_object, bucket, key, ttl)
        assert url is not None  # minio returns None only for a request it was told not to sign
        return url

    async def bucket_exists(self, bucket: str) -> bool:
        try:
            return await asyncio.to_thread(self._client.bucket_exists, bucket)
        except (S3Error, HTTPError, OSError) as exc:
            raise TransientError(f"object store unavailable: {_code(exc)}") from exc


def _code(exc: Exception) -> str:
    return (exc.code or "S3Error") if isinstance(exc, S3Error) else type(exc).__name__

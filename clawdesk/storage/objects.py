"""Object stores for attachments: a local-filesystem store (the default, under the data
dir) and any S3-compatible service (S3, MinIO, Tencent COS) by URL.

`open_store("")` is the filesystem store under `<data dir>/attachments`;
`file:///srv/clawdesk/attachments` another directory; `s3://bucket/prefix?endpoint=
http://minio:9000&region=us-east-1` an S3-compatible bucket (credentials from
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, read by the settings module; the
`minio` client is the optional `s3` extra).
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

T = TypeVar("T")

# S3 error codes that mean the store will not take our credentials: no retry helps.
_CREDENTIAL_ERRORS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
)


class ObjectStoreError(Exception):
    """The object store refused the request for a reason an operator must fix
    (credentials, a bucket that cannot be created); the message says which."""


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")


class ObjectStore(Protocol):
    """Bytes by key. A `put` is all or nothing: a reader never sees half an object."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store the object (replacing one of the same key)."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; KeyError if there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (no error if it is gone)."""
        ...


def check_key(key: str) -> str:
    """The key if it is a plain relative path (no `..`, no absolute path, no odd bytes)."""
    parts = key.split("/")
    if not key or not set(key) <= _SAFE or key.startswith("/") or ".." in parts or "" in parts:
        raise ValueError(f"not a valid object key: {key[:80]!r}")
    return key


class FilesystemStore:
    """Objects as files under a root directory, written to a temporary file and renamed
    into place, so a crash mid-write leaves no partial object."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write the object atomically (off the event loop)."""
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        """The object's bytes; KeyError if there is none."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as err:
            raise KeyError(key) from err

    async def delete(self, key: str) -> None:
        """Remove the object's file."""
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """Objects in an S3-compatible bucket through the `minio` client (sync calls run in
    a thread). Tested against moto's S3 server (tests/storage/test_s3_store.py)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        region: str | None = None,
    ) -> None:
        try:
            from minio import Minio  # deferred: optional extra (clawdesk[s3])
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise RuntimeError("an s3:// object store needs `pip install clawdesk[s3]`") from err
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        self.client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region,
        )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._bucket_checked = False

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)

    async def _call(self, job: Callable[[], T]) -> T:
        """Run a client call in a thread; refused credentials become ObjectStoreError."""
        from minio.error import S3Error  # deferred: optional extra (clawdesk[s3])

        try:
            return await asyncio.to_thread(job)
        except S3Error as err:
            if err.code in _CREDENTIAL_ERRORS:
                raise ObjectStoreError(
                    f"the object store refused the credentials for bucket {self.bucket!r}"
                    f" ({err.code}): check CLAWDESK_ATTACHMENT_STORE_ACCESS_KEY / _SECRET_KEY"
                ) from err
            raise

    def _ensure_bucket(self) -> None:
        # Once per process: a fresh MinIO has no bucket yet.
        if not self._bucket_checked:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
            self._bucket_checked = True

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Upload the object (S3 makes a single PUT atomic)."""
        name = self._name(key)

        def upload() -> None:
            self._ensure_bucket()
            self.client.put_object(
                self.bucket, name, io.BytesIO(data), len(data), content_type=content_type
            )

        await self._call(upload)

    async def get(self, key: str) -> bytes:
        """Download the object; KeyError if there is none."""
        from minio.error import S3Error  # deferred: optional extra (clawdesk[s3])

        def read() -> bytes:
            response = self.client.get_object(self.bucket, self._name(key))
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        try:
            return await self._call(read)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchBucket"):
                raise KeyError(key) from err
            raise

    async def delete(self, key: str) -> None:
        """Remove the object."""
        name = self._name(key)
        await self._call(lambda: self.client.remove_object(self.bucket, name))

    async def presigned_url(self, key: str, ttl_s: int) -> str:
        """A URL that GETs the object straight from the store for `ttl_s` seconds
        (signed locally: no request is made)."""
        name = self._name(key)
        expires = timedelta(seconds=ttl_s)
        return await self._call(
            lambda: self.client.presigned_get_object(self.bucket, name, expires=expires)
        )


def open_store(
    url: str, data_dir: Path, *, access_key: str = "", secret_key: str = ""
) -> ObjectStore:
    """The object store a URL names ("" = the filesystem store under the data dir)."""
    if not url:
        return FilesystemStore(data_dir / "attachments")
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FilesystemStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        query = parse_qs(parts.query)
        endpoint = query.get("endpoint", ["https://s3.amazonaws.com"])[0]
        region = query.get("region", [None])[0]
        return S3Store(
            parts.netloc,
            parts.path,
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
        )
    raise ValueError(f"unsupported object store URL scheme: {parts.scheme!r}")

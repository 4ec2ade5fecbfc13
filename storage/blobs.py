"""Blob storage: attachment bytes by key, on local disk or in an S3-compatible bucket.

This module has one job: keep opaque bytes under a key and hand them back. It does not
encrypt, compress, sniff or name anything: the caller seals the bytes (``storage.crypto``)
before ``put`` and opens them after ``get``, so neither the disk nor the bucket ever holds
plaintext, and both back ends stay interchangeable.

Keys are relative, slash-separated names (``tenant/attachment-id``) of letters, digits and
``_.-``; anything else, and any ``.`` or ``..`` segment, is refused, so no key reaches outside
the store's root or prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class BlobMissing(Exception):
    """No blob is stored under the key asked for."""


class BlobStore(Protocol):
    """Opaque bytes by key (the caller encrypts them)."""

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; BlobMissing if there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a key that is not there is not an error."""
        ...

    async def close(self) -> None:
        """Release connections and threads the store holds."""
        ...


def check_key(key: str) -> str:
    """``key`` if it is a safe relative name, else ValueError (no path traversal)."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"blob key {key!r}: use letters, digits, '_', '.', '-' and '/' "
                         "between non-empty segments")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ValueError(f"blob key {key!r}: '.' and '..' segments are not allowed")
    return key


class LocalBlobs:
    """Blobs as files under ``root``, the key as the relative path; atomic writes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes) -> None:
        """Write to a temp file beside the target, fsync, then rename over it."""
        path = self._path(key)
        await asyncio.to_thread(_write_atomic, path, bytes(data))

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobMissing(key) from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(_unlink_quietly, path)

    async def close(self) -> None:
        """Nothing to release: every call opens and closes its own file."""

    def __repr__(self) -> str:
        return f"LocalBlobs({str(self.root)!r})"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # some platforms cannot open a directory; the data is synced anyway
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
        path.unlink()


class S3Blobs:
    """Blobs as objects in an S3-compatible bucket under ``prefix`` (boto3, in threads).

    Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID and friends, profiles,
    instance roles). With ``endpoint_url`` (MinIO, Ceph, a local test server) requests use
    path-style addressing, which every S3-compatible server understands.
    """

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None,
                 region: str = "us-east-1") -> None:
        if not bucket:
            raise ValueError("S3 blob store: the bucket name is empty")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
        self._client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region,
                                         config=config)

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._client.put_object, Bucket=self.bucket,
                                Key=self._object_key(key), Body=bytes(data))

    async def get(self, key: str) -> bytes:
        object_key = self._object_key(key)
        try:
            return await asyncio.to_thread(self._read, object_key)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") in _MISSING_CODES or status == 404:
                raise BlobMissing(key) from None
            raise

    def _read(self, object_key: str) -> bytes:
        response = self._client.get_object(Bucket=self.bucket, Key=object_key)
        with contextlib.closing(response["Body"]) as body:
            return body.read()

    async def delete(self, key: str) -> None:
        """S3 deletes of a missing key succeed already; nothing to map."""
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket,
                                Key=self._object_key(key))

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Blobs(s3://{self.bucket}/{self.prefix}{where})"


def open_blob_store(url: str | None, data_dir: Path,
                    s3_endpoint: str | None = None) -> BlobStore:
    """The blob store a URL names.

    * None or ``""``: files under ``data_dir/blobs``;
    * ``file:///abs/path``: files under that directory;
    * ``s3://bucket`` or ``s3://bucket/prefix``: objects in that bucket (``s3_endpoint``
      for an S3-compatible server other than AWS).
    """
    accepted = "use file:///absolute/path, s3://bucket[/prefix], or nothing for the data dir"
    if not url:
        store: BlobStore = LocalBlobs(Path(data_dir) / "blobs")
    else:
        parts = urlsplit(url)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise ValueError(f"blob store URL {url!r}: a file URL needs an absolute "
                                 f"path (file:///absolute/path); {accepted}")
            store = LocalBlobs(Path(unquote(parts.path)))
        elif parts.scheme == "s3":
            if not parts.netloc:
                raise ValueError(f"blob store URL {url!r}: no bucket; {accepted}")
            store = S3Blobs(parts.netloc, unquote(parts.path).strip("/"), s3_endpoint)
        else:
            raise ValueError(f"blob store URL {url!r} is not supported; {accepted}")
    log.info("blob store: %r", store)
    return store

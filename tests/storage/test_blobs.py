"""Blob stores: local files and a real S3-protocol server (moto), and the URLs that pick them."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cluster.ingress import free_port
from storage.blobs import BlobMissing, LocalBlobs, S3Blobs, open_blob_store

BUCKET = "rthub-test-blobs"


# --- local files -----------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalBlobs:
    return LocalBlobs(tmp_path / "blobs")


async def test_local_blobs_give_back_what_was_put_and_forget_it_on_delete(local, tmp_path):
    await local.put("tenant-a/att_1.bin", b"\x00sealed\xff")
    assert await local.get("tenant-a/att_1.bin") == b"\x00sealed\xff"
    assert (tmp_path / "blobs" / "tenant-a" / "att_1.bin").read_bytes() == b"\x00sealed\xff"
    await local.delete("tenant-a/att_1.bin")
    with pytest.raises(BlobMissing):
        await local.get("tenant-a/att_1.bin")
    await local.close()


async def test_local_blobs_raise_blob_missing_for_an_unknown_key(local):
    with pytest.raises(BlobMissing):
        await local.get("never/put")


async def test_deleting_a_missing_local_key_is_a_no_op(local):
    await local.delete("never/put")


async def test_a_local_put_overwrites_and_leaves_no_temp_files(local, tmp_path):
    await local.put("k", b"first")
    await local.put("k", b"second, longer")
    assert await local.get("k") == b"second, longer"
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["k"]


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "..", "a/", "", "a\\b",
     "a b", "tenant/\x00"],
)
async def test_a_key_that_could_leave_the_root_is_rejected(local, tmp_path, key):
    with pytest.raises(ValueError, match="blob key"):
        await local.put(key, b"x")
    with pytest.raises(ValueError, match="blob key"):
        await local.get(key)
    with pytest.raises(ValueError, match="blob key"):
        await local.delete(key)
    assert not (tmp_path / "escape").exists()


# --- a real S3-protocol server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "test")
        env.setenv("AWS_SECRET_ACCESS_KEY", "test")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        try:
            admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            admin.create_bucket(Bucket=BUCKET)
            admin.close()
            yield endpoint
        finally:
            server.stop()


@pytest.fixture
async def s3(s3_endpoint: str) -> AsyncIterator[S3Blobs]:
    store = S3Blobs(BUCKET, f"run-{uuid.uuid4().hex}", s3_endpoint)
    yield store
    await store.close()


async def test_s3_blobs_give_back_what_was_put_and_forget_it_on_delete(s3, s3_endpoint):
    await s3.put("tenant-a/att_1.bin", b"\x00sealed\xff")
    assert await s3.get("tenant-a/att_1.bin") == b"\x00sealed\xff"
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    try:  # stored under the prefix, byte for byte
        stored = raw.get_object(Bucket=BUCKET, Key=f"{s3.prefix}/tenant-a/att_1.bin")
        assert stored["Body"].read() == b"\x00sealed\xff"
    finally:
        raw.close()
    await s3.delete("tenant-a/att_1.bin")
    with pytest.raises(BlobMissing):
        await s3.get("tenant-a/att_1.bin")


async def test_s3_blobs_raise_blob_missing_for_an_unknown_key(s3):
    with pytest.raises(BlobMissing):
        await s3.get("never/put")


async def test_deleting_a_missing_s3_key_is_a_no_op(s3):
    await s3.delete("never/put")


async def test_an_s3_put_overwrites(s3):
    await s3.put("k", b"first")
    await s3.put("k", b"second, longer")
    assert await s3.get("k") == b"second, longer"


async def test_s3_blobs_reject_a_traversal_key_too(s3):
    with pytest.raises(ValueError, match="blob key"):
        await s3.put("../other-prefix/k", b"x")


async def test_an_s3_url_opens_a_working_store_on_the_given_endpoint(s3_endpoint):
    store = open_blob_store(f"s3://{BUCKET}/from-url/", Path("/unused"), s3_endpoint)
    try:
        assert isinstance(store, S3Blobs)
        await store.put("k", b"via url")
        assert await store.get("k") == b"via url"
    finally:
        await store.close()


# --- choosing a store by URL -----------------------------------------------------------------


@pytest.mark.parametrize("url", [None, ""])
def test_no_url_means_files_in_the_data_dir(url, tmp_path):
    store = open_blob_store(url, tmp_path)
    assert isinstance(store, LocalBlobs)
    assert store.root == tmp_path / "blobs"


def test_a_file_url_means_files_in_that_directory(tmp_path):
    store = open_blob_store(f"file://{tmp_path}/my%20blobs", Path("/unused"))
    assert isinstance(store, LocalBlobs)
    assert store.root == tmp_path / "my blobs"


@pytest.mark.parametrize(
    ("url", "prefix"),
    [("s3://bucket", ""), ("s3://bucket/", ""), ("s3://bucket/a/b/", "a/b")],
)
def test_an_s3_url_names_the_bucket_and_prefix(url, prefix, monkeypatch):
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    store = open_blob_store(url, Path("/unused"), "http://127.0.0.1:1")
    assert isinstance(store, S3Blobs)
    assert (store.bucket, store.prefix, store.endpoint_url) == (
        "bucket", prefix, "http://127.0.0.1:1")


@pytest.mark.parametrize(
    "url",
    ["http://example.com/blobs", "gs://bucket", "relative/path", "file://host/abs", "s3://",
     "file:relative"],
)
def test_any_other_url_is_refused_naming_the_accepted_forms(url):
    with pytest.raises(ValueError, match=r"blob store URL") as refused:
        open_blob_store(url, Path("/unused"))
    assert "use file:///absolute/path, s3://bucket[/prefix], or nothing for the data dir" in str(
        refused.value)

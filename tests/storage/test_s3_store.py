"""`S3Store` against a real S3 API: moto's server on a local port (boto3 only sets up
the server's IAM user; the store speaks S3 through the `minio` client)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from clawdesk.runtime.ports import free_port
from clawdesk.storage import S3Store, open_store
from clawdesk.storage.objects import ObjectStoreError
from tests.fakes import media

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev extra")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("minio")

PHOTO = media.png()
ALLOW_ALL = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
)


@dataclass(frozen=True)
class Server:
    endpoint: str
    access_key: str
    secret_key: str

    def store(self, *, secret_key: str | None = None, prefix: str = "att") -> S3Store:
        return S3Store(
            "clawdesk-test",
            prefix,
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key if secret_key is None else secret_key,
            region="us-east-1",
        )


@pytest.fixture(scope="module")
def s3() -> Iterator[Server]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # A user whose key the server checks: auth is off until reset-auth turns it on.
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="clawdesk")
        iam.put_user_policy(UserName="clawdesk", PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName="clawdesk")["AccessKey"]
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
        yield Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.stop()


async def test_put_get_and_delete_round_trip(s3: Server) -> None:
    store = s3.store()

    await store.put("demo/2026/03/02/att-1.png", PHOTO, "image/png")
    assert await store.get("demo/2026/03/02/att-1.png") == PHOTO

    await store.delete("demo/2026/03/02/att-1.png")
    with pytest.raises(KeyError):
        await store.get("demo/2026/03/02/att-1.png")
    await store.delete("demo/2026/03/02/att-1.png")  # gone already: no error


async def test_objects_live_under_the_prefix(s3: Server) -> None:
    await s3.store(prefix="one").put("k.png", PHOTO, "image/png")

    with pytest.raises(KeyError):
        await s3.store(prefix="two").get("k.png")
    assert await s3.store(prefix="one").get("k.png") == PHOTO


async def test_a_missing_key_is_a_key_error(s3: Server) -> None:
    with pytest.raises(KeyError):
        await s3.store().get("demo/never/stored.png")


async def test_a_signed_url_serves_the_object_over_http(s3: Server) -> None:
    store = s3.store()
    await store.put("demo/signed.png", PHOTO, "image/png")
    url = await store.presigned_url("demo/signed.png", 60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url

    # moto checks header signatures only (a presigned GET fails its auth check with a
    # 500), so its auth is off while the link is fetched, as an anonymous browser would.
    async with httpx.AsyncClient() as http:
        (await http.post(f"{s3.endpoint}/moto-api/reset-auth", content=b"inf")).raise_for_status()
        try:
            response = await http.get(url)
        finally:
            await http.post(f"{s3.endpoint}/moto-api/reset-auth", content=b"0")

    assert response.status_code == 200
    assert response.content == PHOTO
    assert response.headers["content-type"] == "image/png"


async def test_bad_credentials_are_a_clear_error(s3: Server) -> None:
    store = s3.store(secret_key="not-the-secret")

    with pytest.raises(ObjectStoreError, match="refused the credentials") as raised:
        await store.put("demo/x.png", PHOTO, "image/png")
    assert "SignatureDoesNotMatch" in str(raised.value) or "AccessDenied" in str(raised.value)

    unknown = S3Store(
        "clawdesk-test",
        "",
        s3.endpoint,
        access_key="AKIANOBODY",
        secret_key="x",
        region="us-east-1",
    )
    with pytest.raises(ObjectStoreError, match="InvalidAccessKeyId"):
        await unknown.get("demo/x.png")


def test_an_s3_url_opens_an_s3_store(s3: Server, tmp_path) -> None:
    url = f"s3://clawdesk-test/pre?endpoint={s3.endpoint}&region=us-east-1"
    store = open_store(url, tmp_path, access_key=s3.access_key, secret_key=s3.secret_key)
    assert isinstance(store, S3Store) and store.prefix == "pre"

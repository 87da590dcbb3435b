"""Who can read or write a web conversation: only the holder of the token the gateway
issued with its (unguessable, server-made) id."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from clawdesk.gateway.tokens import SECRET_FILE, ConversationTokens, load_secret
from clawdesk.settings import AppSettings

from .conftest import Gateway, auth
from .fakes import stored_message
from .test_replies import make_reply

MESSAGES = "/api/web/messages"
READS = [
    "/api/web/conversations/{id}/messages",
    "/api/web/conversations/{id}/deliveries",
    "/api/web/conversations/{id}/deliveries/r-1",
]


def message(conversation_id: str | None = None, n: int = 1, **extra: str) -> dict[str, str]:
    body = {"text": "Where is my order?", "client_message_id": f"c-{n}", **extra}
    if conversation_id:
        body["conversation_id"] = conversation_id
    return body


def test_a_new_conversation_gets_a_random_id_and_the_token_that_opens_it(
    gateway: Gateway,
) -> None:
    first = gateway.client.post("/api/web/conversations").json()
    second = gateway.client.post("/api/web/conversations", json={"tenant_id": "demo"}).json()

    assert first["conversation_id"] != second["conversation_id"]
    assert first["conversation_id"].startswith("web-")
    assert len(bytes.fromhex(first["conversation_id"].removeprefix("web-"))) == 16  # 128 bits
    assert first["token"] == gateway.token(first["conversation_id"])
    unknown = gateway.client.post("/api/web/conversations", json={"tenant_id": "nobody"})
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),  # no token
        (auth("someone-else"), 403),  # the token of another conversation
        ({"Authorization": "Bearer v1.forged.demo"}, 403),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ],
)
def test_a_message_to_an_existing_conversation_needs_its_token(
    gateway: Gateway, headers: dict[str, str], status: int
) -> None:
    # A client picking the id of someone's conversation gets nothing into it.
    response = gateway.client.post(MESSAGES, json=message("victim"), headers=headers)

    assert response.status_code == status
    assert gateway.producer.sent == [] and gateway.pool.logged == []
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_cannot_post_as_another_tenant(gateway: Gateway) -> None:
    response = gateway.client.post(
        MESSAGES, json=message("conv-1", tenant_id="acme"), headers=auth("conv-1")
    )

    assert response.status_code == 403
    assert gateway.producer.sent == []


def test_the_token_from_the_first_message_opens_the_conversation(gateway: Gateway) -> None:
    first = gateway.client.post(MESSAGES, json=message()).json()
    bearer = {"Authorization": f"Bearer {first['token']}"}

    again = gateway.client.post(MESSAGES, json=message(first["conversation_id"], 2), headers=bearer)
    history = gateway.client.get(
        f"/api/web/conversations/{first['conversation_id']}/messages", headers=bearer
    )

    assert again.status_code == 202
    assert again.json()["conversation_id"] == first["conversation_id"]
    assert history.status_code == 200


@pytest.mark.parametrize("path", READS)
def test_history_and_deliveries_need_the_conversations_token(gateway: Gateway, path: str) -> None:
    at = datetime(2025, 1, 2, tzinfo=UTC)
    gateway.pool.messages.append(stored_message("conv-h", "m-1", "customer", "my address", at))
    url = path.format(id="conv-h")

    anonymous = gateway.client.get(url)
    other = gateway.client.get(url, headers=auth("conv-other"))

    assert anonymous.status_code == 401
    assert other.status_code == 403
    assert "my address" not in anonymous.text + other.text


def test_the_owner_reads_the_history(gateway: Gateway) -> None:
    at = datetime(2025, 1, 2, tzinfo=UTC)
    gateway.pool.messages.append(stored_message("conv-h", "m-1", "customer", "my address", at))

    owner = gateway.client.get("/api/web/conversations/conv-h/messages", headers=auth("conv-h"))

    assert owner.status_code == 200
    assert [m["text"] for m in owner.json()] == ["my address"]


@pytest.mark.parametrize(
    "query", ["", "?token=", "?token=v1.forged.demo", "?token={other}", "?after=r-1"]
)
def test_the_reply_socket_closes_with_1008_without_the_token(gateway: Gateway, query: str) -> None:
    other = gateway.token("conv-other")
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        gateway.client.websocket_connect("/ws/conv-1" + query.format(other=other)) as socket,
    ):
        socket.receive_json()

    assert closed.value.code == 1008


@pytest.mark.parametrize("by", ["query", "header"])
def test_the_reply_socket_opens_with_the_token(gateway: Gateway, by: str) -> None:
    token = gateway.token("conv-1")
    url, headers = (
        ("/ws/conv-1?token=" + token, {}) if by == "query" else ("/ws/conv-1", auth("conv-1"))
    )
    with gateway.client.websocket_connect(url, headers=headers) as socket:
        gateway.consumer.feed(make_reply("conv-1", "r-1").to_bytes())
        assert socket.receive_json()["reply_id"] == "r-1"


def test_an_unset_secret_is_generated_once_per_data_dir(tmp_path: Path) -> None:
    def settings(data_dir: Path) -> AppSettings:
        return AppSettings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]

    first = load_secret(settings(tmp_path / "a"))

    assert load_secret(settings(tmp_path / "a")) == first  # a restarted gateway: same tokens
    assert load_secret(settings(tmp_path / "b")) != first
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "a" / SECRET_FILE).stat().st_mode) == 0o600
    tokens = ConversationTokens(first)
    assert tokens.verify(tokens.issue("demo", "web-1"), "web-1") is not None
    assert first.decode() not in repr(tokens)  # never in a log line by accident


def test_a_short_configured_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        AppSettings(_env_file=None, web_token_secret="short")  # type: ignore[call-arg,arg-type]

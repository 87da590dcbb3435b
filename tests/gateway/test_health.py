"""Liveness, readiness and metrics."""

from __future__ import annotations

import pytest

from .conftest import Gateway


def test_health_is_ok(gateway: Gateway) -> None:
    response = gateway.client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_broker_and_database_answer(gateway: Gateway) -> None:
    response = gateway.client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {
        "broker": "ok",
        "database": "ok",
        "replies": "ok",
        "workers": "ok",
    }


def test_not_ready_until_a_worker_answers_now(gateway: Gateway) -> None:
    gateway.pool.ready_workers = 0  # every worker still loading models, or none running

    response = gateway.client.get("/ready")

    assert response.status_code == 503
    assert response.json()["failed"] == ["workers"]
    assert response.json()["checks"]["workers"] == "error: NoReadyWorker"


def test_not_ready_names_the_broker_when_it_is_down(gateway: Gateway) -> None:
    gateway.producer.client.down = True

    response = gateway.client.get("/ready")

    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert response.json()["checks"]["broker"] == "error: KafkaConnectionError"


def test_not_ready_names_the_database_when_it_is_down(gateway: Gateway) -> None:
    gateway.pool.down = True

    response = gateway.client.get("/ready")

    assert response.status_code == 503
    # Whether a worker answers is read from Postgres too: unknown, so not ready either.
    assert response.json()["failed"] == ["database", "workers"]


def test_metrics_expose_gateway_counters(gateway: Gateway) -> None:
    gateway.client.post("/api/web/messages", json={"text": "hi", "client_message_id": "m-1"})

    response = gateway.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'clawdesk_gateway_messages_total{outcome="enqueued"}' in response.text


def test_redis_down_is_reported_but_the_gateway_stays_ready(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clawdesk.runtime.ports import free_port
    from clawdesk.settings import connection_settings

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    connection_settings.cache_clear()
    try:
        response = gateway.client.get("/ready")
    finally:
        monkeypatch.undo()
        connection_settings.cache_clear()

    # The rate limiter fails open without Redis: degraded, still taking messages.
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["degraded"] == ["redis"]
    assert response.json()["checks"]["redis"].startswith("error: ")

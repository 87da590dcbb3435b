"""The soak's stack: the gateway listens where the soak waits for its /ready (fast, no
processes started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clawdesk.runtime import stack as stack_module
from clawdesk.runtime.stack import Infrastructure, start_stack
from clawdesk.settings import AppSettings, ConnectionSettings
from clawdesk.soak.command import soak_settings


class _Supervisor:
    """Records the children instead of starting them."""

    def __init__(self, **_: Any) -> None:
        self.children: list[Any] = []

    def add(self, child: Any, *, start: bool = True) -> None:
        self.children.append(child)


def _stack(tmp_path: Path, settings: AppSettings, extra_env: dict[str, str]) -> Any:
    infra = Infrastructure(tmp_path, ConnectionSettings(_env_file=None))  # type: ignore[call-arg]
    return start_stack(settings, infra, 2, lambda _: None, extra_env)


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module, "Supervisor", _Supervisor)


def test_the_soak_probes_the_port_its_gateway_listens_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = AppSettings(_env_file=None, gateway_port=8080, metrics_port=9464)  # type: ignore[call-arg]
    stack = _stack(tmp_path, soak_settings(base, tmp_path, 40841), {})
    probed: list[str] = []

    def get(url: str, **_: Any) -> Any:
        probed.append(url)
        raise stack_module.httpx.ConnectError("nothing listens")

    monkeypatch.setattr(stack_module.httpx, "get", get)
    stack.gateway_ready()

    gateway_env = stack.gateway.env()
    listens = AppSettings(  # type: ignore[call-arg]
        _env_file=None,
        gateway_host=gateway_env["CLAWDESK_GATEWAY_HOST"],
        gateway_port=int(gateway_env["CLAWDESK_GATEWAY_PORT"]),
    )
    assert listens.gateway_port == 40841
    assert probed == [f"http://{listens.gateway_host}:{listens.gateway_port}/ready"]
    # W workers on one host: metrics off, not a port each from the default
    assert [w.env()["CLAWDESK_METRICS_PORT"] for w in stack.workers] == ["0", "0"]


def test_the_gateway_listens_where_the_stack_probes_whatever_the_env_says(
    tmp_path: Path,
) -> None:
    settings = AppSettings(_env_file=None, data_dir=tmp_path, gateway_port=18080)  # type: ignore[call-arg]
    stack = _stack(tmp_path, settings, {"CLAWDESK_GATEWAY_PORT": "40841"})
    assert stack.gateway.env()["CLAWDESK_GATEWAY_PORT"] == "18080"

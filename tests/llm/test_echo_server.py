"""The bundled echo endpoint (dev/bench) speaks the chat-completions shape the client
reads: the replier gets a cited answer from it over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from clawdesk.llm import LlmAnswer, build_replier
from clawdesk.llm.echo_server import EchoProcess, echo_answer
from clawdesk.llm.prompt import WEAK_MATCHES
from clawdesk.settings import AppSettings
from tests.llm.events import skill_result


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoProcess]:
    server = EchoProcess().start()
    yield server
    server.stop()


def test_echo_quotes_the_first_passage_or_asks_to_rephrase() -> None:
    system = (
        "Rules.\n\nKnowledge-base passages:\n\n[1] Shipping › Times\nIt takes 5 days.\n"
        "Or 6.\n\n[2] Shipping › Cost\nFree."
    )
    assert echo_answer([{"role": "system", "content": system}]) == "It takes 5 days.\nOr 6. [1]"
    assert "rephrase" in echo_answer([{"role": "user", "content": "hi"}])
    weak = system.replace("passages:\n", f"passages:\n{WEAK_MATCHES}\n")
    assert "rephrase" in echo_answer([{"role": "system", "content": weak}])


async def test_replier_answers_through_the_echo_endpoint(echo: EchoProcess) -> None:
    settings = AppSettings(llm_base_url=echo.url, llm_api_key=SecretStr("dev"))
    replier = build_replier(settings, None)
    assert replier is not None
    try:
        out = await replier.answer(skill_result(), "r-1")
    finally:
        await replier.client.aclose()
    assert isinstance(out, LlmAnswer)
    assert out.text == "Standard delivery to Germany takes 5-8 business days. [1]"
    assert out.sources == ["en/shipping.md"]
    assert out.tokens > 0


async def test_echo_cuts_an_answer_at_max_tokens(echo: EchoProcess) -> None:
    system = "Rules.\n\nKnowledge-base passages:\n\n[1] Shipping › Times\nIt takes 5 days."
    body = {"model": "echo", "messages": [{"role": "system", "content": system}]}
    async with httpx.AsyncClient(base_url=echo.url) as http:
        full = (await http.post("/chat/completions", json=body)).json()["choices"][0]
        cut = (await http.post("/chat/completions", json={**body, "max_tokens": 2})).json()
    assert (full["message"]["content"], full["finish_reason"]) == ("It takes 5 days. [1]", "stop")
    assert cut["choices"][0]["message"]["content"] == "It takes"
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 2

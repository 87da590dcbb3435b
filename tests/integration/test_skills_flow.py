"""A refund end to end: a real worker on the real broker, Postgres and Redis, the fake
Shopify and Stripe over HTTP. The customer is asked to confirm, the refund runs once,
and a redelivered confirmation does not refund twice."""

from __future__ import annotations

import psycopg
import pytest

from clawdesk.bench.harness import Harness, Received, wait_for
from schemas import Reply, RetrievalContext, SkillResult
from tests.fakes import shopify, stripe
from tests.fakes.fixtures import Fakes, fake_servers, fakes
from tests.integration.conftest import Pipeline
from topics import context_spec, outbound_spec, skill_result_spec

__all__ = ["fake_servers", "fakes"]
pytestmark = pytest.mark.integration
START_TIMEOUT = 90.0  # a first start trains the demo NLU model and embeds the demo KB
MIKE = "mike.turner@example.com"


def inbound_id(value: bytes, kind: type[SkillResult] | type[RetrievalContext]) -> str:
    """The id of the customer message a context or skill result descends from."""
    event = kind.from_bytes(value)
    nlu = event.context.nlu if isinstance(event, SkillResult) else event.nlu
    return nlu.accepted.message.event_id


def for_message(records: list[Received], event_id: str, kind: type) -> list[Received]:
    return [r for r in records if inbound_id(r.value, kind) == event_id]


async def reply_to(out: list[Received], event_id: str, timeout: float = 30.0) -> Reply:
    def mine(rs: list[Received]) -> list[Reply]:
        return [x for x in (Reply.from_bytes(r.value) for r in rs) if x.in_reply_to == event_id]

    await wait_for(out, lambda rs: bool(mine(rs)), timeout)
    return mine(out)[0]


async def test_refund_is_confirmed_then_runs_once_even_when_redelivered(
    pipeline: Pipeline, harness: Harness, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's environment copies os.environ: point it at the fake providers.
    monkeypatch.setenv("CLAWDESK_SHOPIFY_URL", fakes.shopify.base_url)
    monkeypatch.setenv("CLAWDESK_SHOPIFY_TOKEN", shopify.TOKEN)
    monkeypatch.setenv("CLAWDESK_STRIPE_URL", fakes.stripe.base_url)
    monkeypatch.setenv("CLAWDESK_STRIPE_SECRET_KEY", stripe.SECRET_KEY)
    out = await harness.follow(outbound_spec)
    contexts = await harness.follow(context_spec)
    results = await harness.follow(skill_result_spec)
    pipeline.start_worker()

    ask = await harness.ask(f"I want a refund for order #1002, my email is {MIKE}")
    conv = ask.conversation_id
    question = await reply_to(out, ask.event_id, START_TIMEOUT)
    assert question.text.startswith("Shall I refund 313.90 USD for order #1002")
    assert fakes.stripe.calls_to("POST", "/v1/refunds") == []

    yes = await harness.ask("yes", conv)
    done = await reply_to(out, yes.event_id)
    assert done.text.startswith("Done: 313.90 USD for order #1002 is refunded")
    [refund] = fakes.stripe.refunds.values()
    assert refund["id"] in done.text and refund["amount"] == 31390

    # Kafka redelivers the confirming event to the skills stage (as after a crash
    # before the offset commit): the very same retrieval context, once more.
    [again] = for_message(contexts, yes.event_id, RetrievalContext)
    await harness.send(context_spec, conv, again.value)
    await wait_for(results, lambda rs: len(for_message(rs, yes.event_id, SkillResult)) == 2, 30)
    first, second = (
        SkillResult.from_bytes(r.value) for r in for_message(results, yes.event_id, SkillResult)
    )
    assert second.data == first.data, "the stored result is replayed"
    assert len(fakes.stripe.calls_to("POST", "/v1/refunds")) == 1
    assert len(fakes.stripe.refunds) == 1

    marker = await harness.ask("thanks", conv)
    await reply_to(out, marker.event_id)
    assert len([r for r in out if Reply.from_bytes(r.value).in_reply_to == yes.event_id]) == 1
    with psycopg.connect(pipeline.database_url) as conn:
        rows = conn.execute(
            "SELECT status, replayed FROM skill_audit WHERE conversation_id = %s AND"
            " skill = 'refund' ORDER BY id",
            (conv,),
        ).fetchall()
    assert rows == [("needs_confirmation", False), ("ok", False), ("ok", True)]

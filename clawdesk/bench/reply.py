"""`clawdesk bench reply`: latency of the reply composition (`agents.reply.compose_any`)
over the demo KB questions with real retrieval results, offline and with an LLM
endpoint; p50/p95/p99 per mode, and how many replies the LLM actually wrote."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from clawdesk.settings import AppSettings, app_settings, connection_settings
from schemas import (
    AcceptedMessage,
    Channel,
    ConversationSnapshot,
    InboundMessage,
    KbHit,
    NluResult,
    RetrievalContext,
    SkillResult,
    SkillStatus,
)

TENANT = "demo"


@dataclass(frozen=True)
class ModeResult:
    """The latencies (ms) of one mode and how its replies were written."""

    mode: str
    endpoint: str
    latencies_ms: list[float]
    by_llm: int

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


def skill_results(settings: AppSettings, n: int) -> list[SkillResult]:
    """N skill results (no skill ran) for the demo KB questions, cycled, each with the
    hits and answerability that real hybrid retrieval gives it."""
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant
    from clawdesk.services import packaged_data

    rows = [
        json.loads(line)
        for line in packaged_data("kb_questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(open_qdrant("", Path(tmp)), settings_encoder(settings))
        kb.sync(TENANT, [packaged_data("kb")])
        vectors = kb.embedder.encode([r["question"] for r in rows])
        found = [
            kb.search(TENANT, r["question"], v.tolist(), settings.kb_top_k, language=r.get("lang"))
            for r, v in zip(rows, vectors, strict=True)
        ]
        kb.client.close()
    return [_result(i, rows[i % len(rows)], found[i % len(rows)], settings) for i in range(n)]


def _result(i: int, row: dict[str, Any], hits: list[KbHit], settings: AppSettings) -> SkillResult:
    from clawdesk.kb.answerability import is_answerable

    msg = InboundMessage(
        conversation_id=f"bench-{i}",
        tenant_id=TENANT,
        channel=Channel.WEB,
        channel_message_id=f"bench-{i}",
        customer_id="bench",
        text=row["question"],
    )
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=ConversationSnapshot())
    nlu = NluResult(
        **msg.lineage(),
        accepted=accepted,
        intent="faq",  # a knowledge question: not small talk, not a handoff
        confidence=0.9,
        language=row.get("lang", "en"),
        model_version="bench",
    )
    context = RetrievalContext(
        **msg.lineage(),
        nlu=nlu,
        hits=hits,
        answerable=is_answerable(nlu, hits, settings.kb_min_score),
        kb_version="bench",
    )
    return SkillResult(**msg.lineage(), context=context, skill=None, status=SkillStatus.SKIPPED)


async def measure(
    mode: str,
    endpoint: str,
    results: list[SkillResult],
    settings: AppSettings,
    llm: Any,
    tools: Any = None,
) -> ModeResult:
    """Compose every reply in turn, timing each."""
    from agents.reply import compose_any

    latencies: list[float] = []
    by_llm = 0
    for result in results:
        started = time.perf_counter()
        composed = await compose_any(result, settings, llm, f"r-{result.event_id}", tools=tools)
        latencies.append((time.perf_counter() - started) * 1000)
        by_llm += composed.llm
    return ModeResult(mode, endpoint, latencies, by_llm)


async def _llm_mode(
    results: list[SkillResult], settings: AppSettings, label: str, endpoint: str
) -> ModeResult:
    from clawdesk.llm import ToolBox, build_replier
    from clawdesk.skills.worker_skills import SkillRuntime
    from clawdesk.storage import db

    url = connection_settings().database_url
    pool = tools = None
    if url:
        await asyncio.to_thread(db.apply_migrations, url)
        pool = await db.open_pool(url, max_size=4)
        # As in the worker: the tenant's allowed skills are offered as tools.
        tools = ToolBox(SkillRuntime.from_settings(settings, pool, None))
    llm = build_replier(settings, pool)
    assert llm is not None
    state = "token counters + tools in Postgres" if pool else "no DATABASE_URL: no counters/tools"
    try:
        await measure("warm-up", endpoint, results[:3], settings, llm, tools)
        return await measure(f"llm {label}", f"{endpoint}; {state}", results, settings, llm, tools)
    finally:
        await llm.client.aclose()
        if tools is not None:
            await tools.runtime.aclose()
        if pool is not None:
            await pool.close()


def _table(results: list[ModeResult]) -> Table:
    table = Table(title="reply composition latency (ms)")
    for column in ("mode", "n", "p50", "p95", "p99", "written by LLM"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in results:
        table.add_row(
            r.mode,
            str(len(r.latencies_ms)),
            f"{r.percentile(50):.3f}",
            f"{r.percentile(95):.3f}",
            f"{r.percentile(99):.3f}",
            f"{r.by_llm}/{len(r.latencies_ms)}",
        )
    return table


def bench_reply(
    n: int = 200,
    llm_url: str = "",
    llm_key: str = "",
    echo_llm: bool = False,
    echo_delay_ms: float = 0.0,
) -> None:
    """Reply-stage composition latency p50/p95/p99, offline and (with --llm-url or
    --echo-llm) through an LLM endpoint, over the demo KB questions."""
    from clawdesk.llm.echo_server import EchoProcess

    # Importing the reply stage builds the Faust app, which wants a broker address; it
    # never connects here.
    os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    console = Console(stderr=True)
    settings = app_settings()
    console.print(f"retrieving the demo KB questions ({n} replies per mode)…")
    results = skill_results(settings, n)
    measured = [asyncio.run(measure("offline", "templates, no endpoint", results, settings, None))]
    targets: list[tuple[str, str, str, str]] = []
    if llm_url:
        key = llm_key or (settings.llm_api_key.get_secret_value() if settings.llm_api_key else "")
        targets.append((llm_url, key or "bench", "(--llm-url)", f"{llm_url}, {settings.llm_model}"))
    echo = EchoProcess(echo_delay_ms).start() if echo_llm else None
    try:
        if echo is not None:
            about = (
                f"{echo.url}: bundled echo server in its own process, no model, "
                f"{echo_delay_ms:g} ms wait"
            )
            targets.append((echo.url, "echo", "(echo)", about))
        for url, key, label, about in targets:
            with_llm = settings.model_copy(
                update={"llm_base_url": url, "llm_api_key": SecretStr(key)}
            )
            measured.append(asyncio.run(_llm_mode(results, with_llm, label, about)))
    finally:
        if echo is not None:
            echo.stop()
    out = Console()
    out.print(_table(measured))
    for r in measured:
        out.print(f"{r.mode}: {r.endpoint}")

"""`clawdesk bench`: end-to-end throughput and latency of the running pipeline, and in
the same run the raw batched embedding throughput of the configured model."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from clawdesk.bench.harness import Harness, Received, wait_for
from clawdesk.runtime.ports import free_port
from clawdesk.settings import app_settings, connection_settings
from schemas import Reply
from topics import outbound_spec

TEMPLATES = [
    "How long does shipping to {place} take for item {n}?",
    "Can I return the {thing} I bought (ref {n})?",
    "What's the status of order #{order}?",
    "Do you accept {pay} for order {n}?",
    "How do I reset my password, attempt {n}?",
    "When will my refund for the {thing} arrive? case {n}",
    "发往{place_zh}的快递要几天?编号{n}",
    "{thing_zh}可以退货吗?单号{n}",
]
FILL = {
    "place": ["Germany", "France", "the US", "Spain", "Japan"],
    "place_zh": ["德国", "法国", "美国", "上海", "北京"],
    "thing": ["earbuds", "desk lamp", "charger", "kettle", "keyboard"],
    "thing_zh": ["耳机", "台灯", "充电器", "水壶", "键盘"],
    "pay": ["PayPal", "Alipay", "WeChat Pay", "a Visa card"],
    "order": ["1001", "1002", "1003", "1004", "1005"],
}


def questions(n: int, repeat: float, seed: int = 7) -> list[str]:
    """N questions, unique except for a `repeat` share drawn from earlier ones."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        if out and rng.random() < repeat:
            out.append(rng.choice(out))
            continue
        template = TEMPLATES[i % len(TEMPLATES)]
        fill = {k: rng.choice(v) for k, v in FILL.items()}
        out.append(template.format(n=i, **fill))
    return out


@dataclass
class BenchResult:
    """The figures one run measured."""

    n: int
    seconds: float
    msgs_per_s: float
    p50: float
    p95: float
    p99: float
    embed_per_s: float

    @property
    def ratio(self) -> float:
        """End-to-end messages/s as a share of raw embedding sentences/s."""
        return self.msgs_per_s / self.embed_per_s if self.embed_per_s else 0.0


async def push(bootstrap: str, texts: list[str], timeout: float) -> tuple[float, list[float]]:
    """Send every text, wait for every reply; (seconds, per-message latencies)."""
    settings = app_settings()
    async with Harness(bootstrap, settings) as harness:
        out: list[Received] = await harness.follow(outbound_spec)
        warm = await harness.ask("hi")
        await wait_for(out, lambda rs: _has(rs, warm.event_id), 180)
        start = len(out)
        sent_at: dict[str, float] = {}
        t0 = time.monotonic()
        for i, text in enumerate(texts):
            msg = await harness.ask(text, f"bench-{i}")
            sent_at[msg.event_id] = time.monotonic()
        await wait_for(out, lambda rs: len(rs) - start >= len(texts), timeout)
        seen = {Reply.from_bytes(r.value).in_reply_to: r.seen_at for r in out[start:]}
        latencies = [seen[e] - t for e, t in sent_at.items() if e in seen]
        return max(seen.values()) - t0, latencies


def _has(records: list[Received], event_id: str) -> bool:
    return any(Reply.from_bytes(r.value).in_reply_to == event_id for r in records)


def embed_throughput(n: int) -> float:
    """Sentences/s of the configured model on unique sentences, batched as the stage does."""
    from clawdesk.kb.embeddings import shared_embedder

    settings = app_settings()
    embedder = shared_embedder(settings.embedding_model, settings.embedding_batch_size)
    texts = questions(n, 0.0, seed=11)
    embedder.encode(texts[:64])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, n, 32):  # the stages batch up to 32 events
        embedder.encode(texts[i : i + 32])
    return n / (time.perf_counter() - t0)


def cache_hit_rate(metrics_port: int) -> float | None:
    """(L1 + L2 hits) / lookups of the worker's retrieval caches, from its /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    if not metrics_port:
        return None
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "clawdesk_cache_requests_total":
                key = (sample.labels["layer"], sample.labels["result"])
                counts[key] = counts.get(key, 0.0) + sample.value
    # every lookup asks L1 (hit or miss); an L1 miss asks L2
    lookups = counts.get(("l1", "hit"), 0.0) + counts.get(("l1", "miss"), 0.0)
    hits = counts.get(("l1", "hit"), 0.0) + counts.get(("l2", "hit"), 0.0)
    return hits / lookups if lookups else None


def run_bench(n: int, embed_n: int, repeat: float, console: Console) -> BenchResult:
    """Run against KAFKA_BOOTSTRAP_SERVERS, or start a private embedded system."""
    from clawdesk.runtime.stack import Infrastructure, spawn_worker, stop_process

    conn = connection_settings()
    texts = questions(n, repeat)
    with ExitStack() as stack:
        bootstrap = conn.kafka_bootstrap_servers
        if not bootstrap:
            console.print("no KAFKA_BOOTSTRAP_SERVERS: starting a private embedded system…")
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawdesk-bench-")))
            infra = Infrastructure(tmp, conn).start()
            stack.callback(infra.stop)
            settings = app_settings().model_copy(update={"data_dir": tmp})
            metrics_port = free_port()
            env = {**infra.env(), "CLAWDESK_METRICS_PORT": str(metrics_port)}
            worker = spawn_worker("bench", settings, env, tmp / "worker.log")
            stack.callback(stop_process, worker)
            bootstrap = infra.bootstrap_servers
        else:
            metrics_port = app_settings().metrics_port
        console.print(f"pushing {n} questions ({repeat:.0%} repeated)…")
        seconds, latencies = asyncio.run(push(bootstrap, texts, timeout=600))
        hit_rate = cache_hit_rate(metrics_port)
    console.print(f"embedding {embed_n} sentences with the configured model…")
    embed_per_s = embed_throughput(embed_n)
    lat = np.array(latencies) * 1000
    result = BenchResult(
        n=len(latencies),
        seconds=seconds,
        msgs_per_s=len(latencies) / seconds,
        p50=float(np.percentile(lat, 50)),
        p95=float(np.percentile(lat, 95)),
        p99=float(np.percentile(lat, 99)),
        embed_per_s=embed_per_s,
    )
    table = Table(title="clawdesk bench")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("messages answered", str(result.n))
    table.add_row("end-to-end msgs/s", f"{result.msgs_per_s:.1f}")
    table.add_row(
        "latency p50 / p95 / p99 (ms)", f"{result.p50:.0f} / {result.p95:.0f} / {result.p99:.0f}"
    )
    table.add_row("raw embedding sentences/s", f"{result.embed_per_s:.1f}")
    table.add_row("ratio (pipeline / embedding)", f"{result.ratio:.3f}")
    table.add_row("retrieval cache hit rate", "n/a" if hit_rate is None else f"{hit_rate:.1%}")
    Console().print(table)
    return result

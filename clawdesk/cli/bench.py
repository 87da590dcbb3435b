"""`clawdesk bench [webhooks|reply|startup|replay]`: benchmarks (logic: `clawdesk.bench`).

docs/benchmarks.md lists what each measures and the figures recorded so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Benchmarks: the pipeline (default), `webhooks` or `reply`.")
console = Console(stderr=True)


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    n: Annotated[int, typer.Option(help="unique questions to push")] = 500,
    embed_n: Annotated[int, typer.Option(help="sentences for the raw embedding run")] = 2000,
    repeat: Annotated[float, typer.Option(help="share of repeated questions, 0..1")] = 0.0,
    workers: Annotated[
        str,
        typer.Option(
            help="a stage (the bottleneck): one worker per stage, then two of this one, on a "
            "private embedded system; prints msgs/s, p99 and the scaling ratio"
        ),
    ] = "",
) -> None:
    """Push N questions through the running pipeline; print msgs/s, latency percentiles,
    raw batched embedding throughput and their ratio. `bench webhooks`: the gateway's
    webhook acknowledgement latency under load. `bench reply`: reply-composition latency,
    offline and through an LLM endpoint."""
    if ctx.invoked_subcommand is not None:
        return
    if workers:
        # deferred: the bench modules start brokers, workers and encoders
        from clawdesk.bench.scaling import run_scaling

        try:
            run_scaling(workers, n, console)
        except ValueError as err:
            console.print(f"[red]--workers: {err}[/]")
            raise typer.Exit(2) from None
        return
    # deferred: the pipeline bench imports the encoders and the stack
    from clawdesk.bench.pipeline import run_bench

    run_bench(n=n, embed_n=embed_n, repeat=repeat, console=console)


@app.command("webhooks")
def webhooks(
    requests: Annotated[int, typer.Option(help="webhook calls, one message each")] = 5000,
    concurrency: Annotated[int, typer.Option(help="open connections")] = 50,
    channel: Annotated[str, typer.Option(help="telegram, whatsapp or mixed")] = "mixed",
    customers: Annotated[int, typer.Option(help="distinct senders")] = 500,
    threads: Annotated[int, typer.Option(help="wrk threads")] = 2,
    url: Annotated[
        str, typer.Option(help="a running gateway (its secrets from the environment)")
    ] = "",
) -> None:
    """Webhook ack latency (p50/p90/p99) and requests/s under load from wrk, then check
    that every acknowledged message reached the inbound topic."""
    # deferred: the benchmark module imports what it measures
    from clawdesk.bench.webhooks import bench_webhooks

    bench_webhooks(
        requests=requests,
        concurrency=concurrency,
        channel=channel,
        customers=customers,
        threads=threads,
        url=url,
    )


@app.command("reply")
def reply(
    n: Annotated[int, typer.Option(help="replies to compose per mode")] = 200,
    llm_url: Annotated[
        str, typer.Option(help="an OpenAI-compatible base URL (…/v1) to measure as well")
    ] = "",
    llm_key: Annotated[str, typer.Option(help="its API key (default: CLAWDESK_LLM_API_KEY)")] = "",
    echo_llm: Annotated[
        bool, typer.Option(help="also measure against the bundled echo endpoint (no model)")
    ] = False,
    echo_delay_ms: Annotated[float, typer.Option(help="the echo endpoint's wait")] = 0.0,
) -> None:
    """Reply-stage composition latency p50/p95/p99, offline and (with --llm-url or
    --echo-llm) through an LLM endpoint, over the demo KB questions."""
    # deferred: the benchmark module imports what it measures
    from clawdesk.bench.reply import bench_reply

    bench_reply(
        n=n, llm_url=llm_url, llm_key=llm_key, echo_llm=echo_llm, echo_delay_ms=echo_delay_ms
    )


@app.command("startup")
def startup(
    runs: Annotated[int, typer.Option(min=1, help="samples per restart scenario")] = 3,
    timeout: Annotated[float, typer.Option(help="give up on one start after this long")] = 180.0,
    keep: Annotated[
        Path | None,
        typer.Option(help="run in this directory and keep the worker logs (default: temp dir)"),
    ] = None,
) -> None:
    """Time worker process start → first answered message, per start-up scenario.

    Uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL / REDIS_URL when set, else starts a
    private embedded broker, Postgres and Redis. Each run uses its own app id, topics
    and data directory, so it never disturbs a running system.
    """
    # deferred: the benchmark module imports what it measures
    from clawdesk.bench.startup import bench_startup

    bench_startup(runs=runs, timeout=timeout, keep=keep)


@app.command("replay")
def replay(
    n: Annotated[int, typer.Option(help="questions, one conversation each")] = 1000,
) -> None:
    """Messages/s of a replay next to the live pipeline's, and the diff report's size."""
    # deferred: the benchmark module imports what it measures
    from clawdesk.bench.replay import bench_replay

    bench_replay(n)

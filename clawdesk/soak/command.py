"""What `clawdesk soak` runs (its command is `clawdesk/cli/soak.py`): a private stack,
fake providers, customers, faults, then the verdict.

It always starts its own embedded broker, Postgres and Redis (configured URLs are
ignored: the faults stop and kill those parts), W workers and a gateway under the
supervisor `clawdesk up` uses, in a temporary data directory.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the command module is imported by every `clawdesk` run: keep it light
    from collections.abc import Callable

    from rich.console import Console

    from clawdesk.runtime.stack import Stack
    from clawdesk.settings import AppSettings
    from clawdesk.soak.driver import Conversation, DriveResult
    from clawdesk.soak.faults import Durations, FaultRunner
    from clawdesk.soak.providers import FakeProviders
    from clawdesk.soak.verify import SoakReport

DEFAULT_MODELS_DIR = Path.home() / ".cache" / "clawdesk" / "soak-models"
HTTP_TIMEOUT_S = 2.0  # the senders' timeout: a held fake response passes it quickly
START_TIMEOUT_S = 300.0  # the first start trains the demo NLU model
WARM_UP_TIMEOUT_S = 120.0


@dataclass
class SoakOptions:
    """What `clawdesk soak` was asked to do."""

    conversations: int = 20
    messages: int = 5
    rate: float = 0.0  # 0: spread the messages over one pass of the fault schedule
    minutes: float = 10.0
    workers: int = 2
    channels: list[str] = field(default_factory=lambda: ["web", "inapp", "telegram", "whatsapp"])
    faults: list[str] | None = None  # None: every fault
    fault_every_s: float = 20.0
    postgres_outage_s: float = 60.0
    redis_outage_s: float = 30.0
    provider_outage_s: float = 20.0
    llm: bool = False
    seed: int = 1
    drain_timeout_s: float = 300.0
    models_dir: Path = DEFAULT_MODELS_DIR
    keep: bool = False


def chosen_faults(options: SoakOptions, warn: Callable[[str], None]) -> list[str]:
    """The faults to inject: the asked ones (default all), without the LLM's unless an
    LLM is configured (the default replies need none)."""
    from clawdesk.soak.faults import FAULTS

    asked = (
        list(options.faults)
        if options.faults is not None
        else [f for f in FAULTS if f != "llm" or options.llm]
    )
    unknown = [f for f in asked if f not in FAULTS]
    if unknown:
        raise typer.BadParameter(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    if "llm" in asked and not options.llm:
        warn("the llm fault needs --llm (replies use no LLM otherwise): skipped")
        asked = [f for f in asked if f != "llm"]
    return asked


def auto_rate(options: SoakOptions, faults: list[str], durations: Durations) -> float:
    """Messages/s that spread the drive over one pass of the fault schedule (at least 30 s),
    so that every fault meets traffic."""
    outage = {
        "postgres": durations.postgres,
        "redis": durations.redis,
        "llm": durations.llm,
    }
    cycle = sum(
        options.fault_every_s
        + (durations.provider if f.startswith("provider-") else outage.get(f, 0.0))
        for f in faults
    )
    # One more interval: the last fault starts before the last messages are sent.
    return options.conversations * options.messages / max(30.0, cycle + options.fault_every_s)


def soak_settings(base: AppSettings, data_dir: Path, gateway_port: int) -> AppSettings:
    """The settings of the soak's stack: its data dir, its gateway's port, and no
    metrics ports. `start_stack` reads them, not the environment: it tells the gateway
    where to listen, probes /ready there, and gives each worker its metrics port."""
    return base.model_copy(
        update={"data_dir": data_dir, "gateway_port": gateway_port, "metrics_port": 0}
    )


def run_soak(options: SoakOptions, console: Console) -> SoakReport:
    """Run the soak; its SoakReport (printed to `console`, a rich Console)."""
    from rich.console import Console

    from clawdesk.runtime.ports import free_port, wait_for_port
    from clawdesk.runtime.stack import Infrastructure, start_stack
    from clawdesk.settings import ConnectionSettings, app_settings
    from clawdesk.soak import driver as drv
    from clawdesk.soak.faults import Durations, FaultRunner
    from clawdesk.soak.providers import FakeProviders
    from clawdesk.soak.verify import render, verify

    faults = chosen_faults(options, lambda text: console.print(f"[yellow]{text}[/]"))
    tmp = Path(tempfile.mkdtemp(prefix="clawdesk-soak-"))
    options.models_dir.mkdir(parents=True, exist_ok=True)
    events: list[str] = []

    def on_event(text: str) -> None:
        events.append(f"{time.strftime('%H:%M:%S')} {text}")
        console.print(f"  [yellow]{text}[/]")

    providers = FakeProviders(hold_s=HTTP_TIMEOUT_S + 1.5).start()
    infra = stack = runner = None
    try:
        console.print(f"[bold]clawdesk soak[/]: private stack in {tmp}")
        # Always embedded: the faults stop and kill these parts.
        conn = ConnectionSettings(kafka_bootstrap_servers="", database_url="", redis_url="")
        infra = Infrastructure(tmp, conn).start()
        settings = soak_settings(app_settings(), tmp, free_port())
        port = settings.gateway_port
        env = {
            "CLAWDESK_DATA_DIR": str(tmp),  # the gateway's; each worker gets its own
            "CLAWDESK_MODELS_DIR": str(options.models_dir),
            "CLAWDESK_LOG_LEVEL": "INFO",
            "HF_HUB_OFFLINE": "1",
            "CLAWDESK_WEB_TOKEN_SECRET": secrets.token_urlsafe(36),
            # The soak is about faults, not about the customers' rate limits.
            "CLAWDESK_RATE_LIMIT_CUSTOMER": "100000/minute",
            "CLAWDESK_RATE_LIMIT_TENANT": "10000000/minute",
            "CLAWDESK_HTTP_TIMEOUT_S": str(HTTP_TIMEOUT_S),
            **drv.channel_env(),
            **providers.env(),
            **(providers.llm_env() if options.llm else {}),
        }
        stack = start_stack(settings, infra, options.workers, on_event, env)
        durations = Durations(
            options.postgres_outage_s,
            options.redis_outage_s,
            options.provider_outage_s,
            options.provider_outage_s,
        )
        runner = FaultRunner(
            stack.supervisor,
            providers,
            faults,
            options.fault_every_s,
            durations,
            options.seed,
            on_event,
        ).start()
        console.print(f"  {options.workers} workers starting (models in {options.models_dir})…")
        wait_for_port("127.0.0.1", port, START_TIMEOUT_S)
        _wait_ready(stack, options.workers, START_TIMEOUT_S)
        base = f"http://127.0.0.1:{port}"
        asyncio.run(_warm_up(base, infra.database_url))
        console.print(f"  ready; faults every {options.fault_every_s:.0f} s: {', '.join(faults)}")
        plan = drv.plan(options.conversations, options.messages, options.channels, options.seed)
        rate = options.rate or auto_rate(options, faults, durations)
        console.print(
            f"  driving {options.conversations * options.messages} messages at {rate:.2f}/s"
        )
        runner.arm()
        result = asyncio.run(_drive(base, plan, options, rate, runner, console))
        runner.disarm()
        console.print(f"  drove {len(result.acked)} messages; draining…")
        drained = asyncio.run(_drain(infra.database_url, runner, options.drain_timeout_s))
        time.sleep(HTTP_TIMEOUT_S + 2)  # let a held provider answer land in its log
        _dump_inputs(tmp / "soak-inputs.json", result, providers, runner)
        report = verify(
            infra.database_url, result.acked, list(providers.sends), runner.windows, time.time()
        )
        report.drive = {
            "started_at": result.started_at,
            "seconds": round(result.ended_at - result.started_at, 1),
            "client retries": dict(sorted(result.refusals.items())),
            "not acknowledged (time up)": result.unacked,
            "drained": drained,
            "restarts": {n: stack.supervisor.restarts(n) for n in stack.supervisor.names()},
        }
        render(report, Console())
        return report
    finally:
        if runner is not None:
            runner.stop()
        if stack is not None:
            stack.stop()
        elif infra is not None:
            infra.stop()
        providers.stop()
        if options.keep:
            console.print(f"  kept {tmp} (logs in {tmp / 'logs'})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _dump_inputs(
    path: Path, result: DriveResult, providers: FakeProviders, runner: FaultRunner
) -> None:
    """What the verifier reads besides Postgres, for a look after the run (`--keep`)."""
    inputs = {
        "acked": [asdict(a) for a in result.acked],
        "sends": [asdict(s) for s in providers.sends],
        "faults": [asdict(w) for w in runner.windows],
    }
    path.write_text(json.dumps(inputs, indent=1, ensure_ascii=False))


def _wait_ready(stack: Stack, workers: int, timeout_s: float) -> None:
    """Until every worker has logged that its services are ready and the gateway says a
    message sent now is answered now."""
    deadline = time.monotonic() + timeout_s
    while len(stack.ready_workers()) < workers or not stack.gateway_ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready within {timeout_s:.0f} s")
        time.sleep(0.5)


async def _warm_up(base: str, database_url: str) -> None:
    """One web message answered end to end before the clock starts."""
    import psycopg

    from clawdesk.soak.driver import Conversation, Driver

    deadline = time.monotonic() + WARM_UP_TIMEOUT_S
    driver = Driver(base, rate=0, deadline=deadline)
    await driver.run([Conversation(0, "web", "soak-warm-up", ("Do you accept PayPal?",))])
    while time.monotonic() < deadline:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT 1 FROM deliveries WHERE status IN ('sent', 'delivered', 'read')"
            )
            if await cur.fetchone():
                return
        await asyncio.sleep(0.5)
    raise RuntimeError("the warm-up message was not answered")


async def _drive(
    base: str,
    plan: list[Conversation],
    options: SoakOptions,
    rate: float,
    runner: FaultRunner,
    console: Console,
) -> DriveResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from clawdesk.soak.driver import Driver

    total = options.conversations * options.messages
    deadline = time.monotonic() + options.minutes * 60
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("acknowledged", total=total)
        driver = Driver(base, rate, deadline, on_ack=lambda _: bar.advance(task))

        async def describe() -> None:
            while True:
                active = runner.active
                bar.update(task, description=f"acknowledged ({active or 'no fault'})")
                await asyncio.sleep(0.5)

        status = asyncio.create_task(describe())
        try:
            return await driver.run(plan)
        finally:
            status.cancel()


async def _drain(database_url: str, runner: FaultRunner, timeout_s: float) -> bool:
    """Wait until no fault is in progress and every acknowledged message is settled."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if runner.active is None:
            try:
                async with await psycopg.AsyncConnection.connect(
                    database_url, connect_timeout=3
                ) as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM inbound_log WHERE outcome IS NULL"
                    )
                    row = await cur.fetchone()
                if row is not None and row[0] == 0:
                    return True
            except psycopg.Error:
                pass  # Postgres is restarting
        await asyncio.sleep(1.0)
    return False

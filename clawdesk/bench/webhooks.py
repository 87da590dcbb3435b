"""`clawdesk bench webhooks`: the gateway's webhook acknowledgement latency under load.

`wrk` (a C load generator, Debian package `wrk`) drives the gateway over loopback with
valid, signed Telegram and/or WhatsApp webhooks, each carrying a message of its own; a
Lua script hands every request a different pre-signed body. wrk reports p50/p90/p99
latency and requests/s; the bench then reads the inbound topic and checks that every
acknowledged message is on it (an ack must mean "enqueued").

Without `--url` the bench starts what it measures, as `clawdesk up` does: the broker
(Tansu unless KAFKA_BOOTSTRAP_SERVERS is set), Postgres and Redis (from DATABASE_URL /
REDIS_URL, else embedded) and one gateway process with bench secrets.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from clawdesk.settings import app_settings, channel_settings, connection_settings
from connectors.signatures import SIGNATURE_PREFIX, hmac_sha256_hex
from schemas import InboundMessage
from topics import inbound_spec

CHANNELS = ("telegram", "whatsapp", "mixed")
WA_PHONE_NUMBER_ID = "100000000000001"
CHAT_BASE = 7_000_000_000
WRK_MAX_S = 600  # a run that has not finished by then is stopped and reported as it is
# The self-started gateway's secrets and limits: generous, so the limiter's Redis round
# trip is measured without refusing the load.
BENCH_ENV = {
    "CLAWDESK_TELEGRAM_SECRET_TOKEN": "bench-telegram-secret",
    "CLAWDESK_WHATSAPP_APP_SECRET": "bench-whatsapp-secret",
    "CLAWDESK_RATE_LIMIT_CUSTOMER": "100000/minute",
    "CLAWDESK_RATE_LIMIT_TENANT": "10000000/minute",
    "CLAWDESK_LOG_LEVEL": "WARNING",
    # The bench runs a gateway without workers: it measures acknowledgements alone.
    "CLAWDESK_READY_REQUIRES_WORKER": "false",
}

WRK_SCRIPT = r"""
-- One pre-signed request per line: path \t header name \t header value \t body.
local threads = {}
local n_threads = 0

function setup(thread)
  thread:set("id", n_threads)
  n_threads = n_threads + 1
  table.insert(threads, thread)
end

function init(args)
  local file, every = args[1], tonumber(args[2])
  finished = args[3] .. id
  -- wrk calls thread 0's request() once to check it, without sending it: skip that call.
  requests, sent, answered, acked, refused = {}, 0, 0, 0, 0
  local i = 0
  for line in io.lines(file) do
    if i % every == id then
      local path, name, value, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {["Content-Type"] = "application/json"}
      headers[name] = value
      table.insert(requests, wrk.format("POST", path, headers, body))
    end
    i = i + 1
  end
  if id == 0 then sent = -1 end
end

function delay()
  -- Every message of this thread is out: its connections idle until the bench stops wrk.
  if sent >= #requests then return 600000 end
  return 0
end

function request()
  sent = sent + 1
  if sent >= 1 and sent <= #requests then return requests[sent] end
  return wrk.format("GET", "/health")  -- the check, or a bench outliving its 10-min cap
end

function response(status, headers, body)
  answered = answered + 1
  if answered <= #requests then
    if status == 200 then acked = acked + 1 else refused = refused + 1 end
  end
  -- wrk runs for its whole -d; this file tells the bench to stop it (SIGINT) now.
  if answered == #requests then io.open(finished, "w"):close() end
end

function done(summary, latency, requests_)
  local a, r = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("acked"); r = r + t:get("refused") end
  io.write(string.format(
    '{"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "requests": %d,' ..
    ' "duration_us": %d, "acked": %d, "refused": %d, "socket_errors": %d}\n',
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.requests, summary.duration, a, r,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class Request:
    """One webhook call: where, its authentication header, its body, and the
    channel_message_id the pipeline will know it by."""

    path: str
    header: tuple[str, str]
    body: bytes
    message_id: str


def telegram_request(run: str, i: int, customers: int, secret: str) -> Request:
    """A text Update from one of `customers` chats, unique by run and index."""
    chat = CHAT_BASE + i % customers
    update = {
        "update_id": i + 1,
        "message": {
            "message_id": i + 1,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "language_code": "en"},
            "text": f"bench {run} {i}: where is my order?",
        },
    }
    body = json.dumps(update, separators=(",", ":")).encode()
    return Request(
        "/webhooks/telegram",
        ("X-Telegram-Bot-Api-Secret-Token", secret),
        body,
        f"{chat}:{i + 1}",
    )


def whatsapp_request(run: str, i: int, customers: int, secret: str) -> Request:
    """A text message notification signed with the app secret."""
    wa_id = str(4_900_000_000_000 + i % customers)
    wamid = f"wamid.bench.{run}.{i}"
    notification = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "bench",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": WA_PHONE_NUMBER_ID},
                            "contacts": [{"wa_id": wa_id, "profile": {"name": "Bench"}}],
                            "messages": [
                                {
                                    "id": wamid,
                                    "from": wa_id,
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": f"bench {run} {i}: refund please"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    body = json.dumps(notification, separators=(",", ":")).encode()
    signature = SIGNATURE_PREFIX + hmac_sha256_hex(secret, body)
    return Request("/webhooks/whatsapp", ("X-Hub-Signature-256", signature), body, wamid)


def make_requests(
    channel: str, n: int, customers: int, secrets: dict[str, str], run: str
) -> list[Request]:
    """`n` webhook calls of `channel` ("mixed" alternates Telegram and WhatsApp)."""
    made: list[Request] = []
    for i in range(n):
        kind = channel if channel != "mixed" else ("telegram", "whatsapp")[i % 2]
        if kind == "telegram":
            made.append(telegram_request(run, i, customers, secrets["telegram"]))
        else:
            made.append(whatsapp_request(run, i, customers, secrets["whatsapp"]))
    return made


def write_requests(requests: list[Request], path: Path) -> None:
    """One line per request, as the wrk script reads them."""
    with path.open("wb") as out:
        for r in requests:
            out.write(f"{r.path}\t{r.header[0]}\t{r.header[1]}\t".encode() + r.body + b"\n")


@dataclass(frozen=True)
class WrkResult:
    """What wrk measured (latencies in seconds)."""

    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    requests: int
    duration_s: float
    acked: int
    refused: int
    socket_errors: int

    @property
    def rate(self) -> float:
        """Webhook calls answered per second."""
        return (self.acked + self.refused) / self.duration_s if self.duration_s else 0.0


def run_wrk(url: str, requests_file: Path, n: int, concurrency: int, threads: int) -> WrkResult:
    """Drive the gateway with wrk until every request was answered (or 10 min pass)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise typer.BadParameter("wrk is not installed: `make system-test-deps` installs it")
    threads = max(1, min(threads, concurrency, n))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "webhooks.lua"
        script.write_text(WRK_SCRIPT)
        finished = Path(tmp) / "finished-"
        command = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{WRK_MAX_S}s", "--timeout",
                   "30s", "-s", str(script), url, "--", str(requests_file), str(threads),
                   str(finished)]  # fmt: skip
        wrk_process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        # wrk has no "stop after N requests": each thread leaves a file when all of its
        # requests are answered, and SIGINT makes wrk report at once (runtime included).
        while wrk_process.poll() is None and len(list(Path(tmp).glob("finished-*"))) < threads:
            time.sleep(0.005)
        wrk_process.send_signal(signal.SIGINT)
        stdout, _ = wrk_process.communicate(timeout=30)
    line = next(ln for ln in stdout.splitlines() if ln.startswith("{"))
    raw = json.loads(line)
    return WrkResult(
        p50_s=raw["p50_us"] / 1e6,
        p90_s=raw["p90_us"] / 1e6,
        p99_s=raw["p99_us"] / 1e6,
        max_s=raw["max_us"] / 1e6,
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        acked=raw["acked"],
        refused=raw["refused"],
        socket_errors=raw["socket_errors"],
    )


async def ensure_topic(bootstrap: str, topic: str, partitions: int, replicas: int) -> None:
    """Create the inbound topic as the workers do (configured partitions), if it does
    not exist yet: a gateway alone would leave it to the broker's auto-creation."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, partitions, replicas)])
    finally:
        await admin.close()


async def topic_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The inbound topic's end offset per partition (where this run's messages start)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # the topic may be new
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def find_on_topic(
    bootstrap: str, topic: str, start: dict[int, int], wanted: set[str], timeout_s: float
) -> set[str]:
    """Which of the `wanted` channel message ids are on the topic after `start`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    found: set[str] = set()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start.get(tp.partition, 0))
        deadline = time.monotonic() + timeout_s
        while found != wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    message = InboundMessage.from_bytes(record.value or b"{}")
                    if message.channel_message_id in wanted:
                        found.add(message.channel_message_id)
    finally:
        await consumer.stop()
    return found


@contextmanager
def started_gateway(console: Console) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(gateway URL, bootstrap servers, secrets) of a stack started for the bench."""
    from clawdesk.runtime.ports import free_port
    from clawdesk.runtime.stack import Infrastructure, spawn_gateway, stop_process

    settings = app_settings()
    data_dir = settings.data_dir / "bench-webhooks"
    console.print("starting broker, Postgres, Redis and a gateway…")
    infra = Infrastructure(data_dir, connection_settings()).start()
    port = free_port()
    env = {**infra.env(), **BENCH_ENV, "CLAWDESK_GATEWAY_PORT": str(port)}
    log_path = data_dir / "gateway.log"
    gateway = spawn_gateway(settings, env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, gateway, log_path)
        secrets = {
            "telegram": BENCH_ENV["CLAWDESK_TELEGRAM_SECRET_TOKEN"],
            "whatsapp": BENCH_ENV["CLAWDESK_WHATSAPP_APP_SECRET"],
        }
        yield url, infra.bootstrap_servers, secrets
    finally:
        stop_process(gateway)
        infra.stop()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited; see {log_path}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the gateway was not ready in 60 s; see {log_path}")


def configured_secrets() -> dict[str, str]:
    """The running gateway's webhook secrets, from the same environment."""
    channels = channel_settings()
    token, secret = channels.telegram_secret_token, channels.whatsapp_app_secret
    return {
        "telegram": token.get_secret_value() if token else "",
        "whatsapp": secret.get_secret_value() if secret else "",
    }


def bench_webhooks(
    requests: int = 5000,
    concurrency: int = 50,
    channel: str = "mixed",
    customers: int = 500,
    threads: int = 2,
    url: str = "",
) -> None:
    """Webhook ack latency (p50/p90/p99) and requests/s under load from wrk, then check
    that every acknowledged message reached the inbound topic."""
    if channel not in CHANNELS:
        raise typer.BadParameter(f"--channel must be one of {', '.join(CHANNELS)}")
    console = Console(stderr=True)
    if url:
        bootstrap = connection_settings().kafka_bootstrap_servers
        if not bootstrap:
            raise typer.BadParameter("KAFKA_BOOTSTRAP_SERVERS is needed to check the topic")
        _bench(url.rstrip("/"), bootstrap, configured_secrets(), requests, concurrency,
               channel, customers, threads, console)  # fmt: skip
        return
    with started_gateway(console) as (gateway_url, bootstrap, secrets):
        _bench(gateway_url, bootstrap, secrets, requests, concurrency, channel, customers,
               threads, console)  # fmt: skip


def _bench(
    url: str,
    bootstrap: str,
    secrets: dict[str, str],
    n: int,
    concurrency: int,
    channel: str,
    customers: int,
    threads: int,
    console: Console,
) -> None:
    run = uuid.uuid4().hex[:8]
    made = make_requests(channel, n, customers, secrets, run)
    settings = app_settings()
    topic = inbound_spec.name(settings)
    asyncio.run(
        ensure_topic(bootstrap, topic, inbound_spec.partitions(settings), settings.topic_replicas)
    )
    start = asyncio.run(topic_end_offsets(bootstrap, topic))
    with tempfile.TemporaryDirectory() as tmp:
        requests_file = Path(tmp) / "requests.tsv"
        write_requests(made, requests_file)
        console.print(f"{n} {channel} webhooks, {concurrency} connections, run {run}…")
        result = run_wrk(url, requests_file, n, concurrency, threads)
    wanted = {r.message_id for r in made}
    found = asyncio.run(find_on_topic(bootstrap, topic, start, wanted, timeout_s=60))
    _report(result, n, len(found), channel, concurrency)
    missing = sorted(wanted - found)
    if missing:
        console.print(f"[red]not on the inbound topic: {', '.join(missing[:10])}[/]")
    if result.acked == n and found != wanted:
        raise typer.Exit(1)  # an acknowledged message is missing from the topic


def _report(result: WrkResult, n: int, on_topic: int, channel: str, concurrency: int) -> None:
    table = Table(title=f"webhook acks: {n} {channel} calls, {concurrency} connections")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("acknowledged (200)", f"{result.acked}/{n}")
    table.add_row("refused (non-200)", str(result.refused))
    table.add_row("socket errors", str(result.socket_errors))
    table.add_row("requests/s", f"{result.rate:.0f}")
    table.add_row("ack latency p50", f"{result.p50_s * 1000:.1f} ms")
    table.add_row("ack latency p90", f"{result.p90_s * 1000:.1f} ms")
    table.add_row("ack latency p99", f"{result.p99_s * 1000:.1f} ms")
    table.add_row("ack latency max", f"{result.max_s * 1000:.1f} ms")
    table.add_row("messages on the inbound topic", f"{on_topic}/{n}")
    Console().print(table)

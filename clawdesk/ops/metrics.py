"""Prometheus metrics. Names follow the seed article's (openclaw_* → clawdesk_*)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

MESSAGES_PROCESSED = Counter(
    "clawdesk_messages_processed", "Events a stage finished processing", ["stage"]
)
ERRORS = Counter("clawdesk_errors", "Events a stage failed on", ["stage", "reason"])
DEAD_LETTERS = Counter("clawdesk_dead_letters", "Events sent to the dead-letter topic", ["stage"])
# A dead letter Postgres did not take goes to the worker's local spool
# (clawdesk.storage.deadletters) until a timer moves it in.
DEAD_LETTERS_SPOOLED = Counter(
    "clawdesk_dead_letters_spooled", "Dead letters appended to the local spool (Postgres failed)"
)
DEAD_LETTERS_FLUSHED = Counter(
    "clawdesk_dead_letters_flushed", "Spooled dead letters moved into Postgres"
)
DEAD_LETTERS_SPOOL_PENDING = Gauge(
    "clawdesk_dead_letters_spool_pending", "Dead letters waiting in the local spool"
)
DUPLICATES = Counter("clawdesk_duplicates", "Redelivered events recognised and skipped", ["stage"])
RESPONSE_TIME = Histogram(
    "clawdesk_response_time_seconds",
    "Ingress-to-dispatch latency of a reply",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
STAGE_LATENCY = Histogram(
    "clawdesk_stage_seconds",
    "Time a stage spends on one event",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
CONSUMER_LAG = Gauge(
    "clawdesk_consumer_lag", "Messages behind the high watermark", ["topic", "partition"]
)
PARKED = Counter(
    "clawdesk_parked",
    "Events a stage parked because a dependency failed (re-driven from the inbound log)",
    ["stage", "reason"],
)
INBOUND_BACKLOG = Gauge(
    "clawdesk_inbound_backlog", "Acknowledged customer messages not settled yet"
)
REDRIVES = Counter(
    "clawdesk_redrives", "Open messages sent again from the inbound log, by outcome", ["outcome"]
)
MEMORY_RESTORED = Counter(
    "clawdesk_memory_restored", "Conversation memories rebuilt from Postgres after a loss"
)
BURST_MERGED = Counter(
    "clawdesk_burst_merged", "Short messages answered together with the next one of a burst"
)
CONVENTIONS = Counter(
    "clawdesk_channel_conventions",
    "Channel events answered past the NLU (follows, /start, /help), by channel and kind",
    ["channel", "kind"],
)
HANDOFFS = Counter("clawdesk_handoffs", "Conversations handed to a human", ["reason"])

# --- Layered cache (clawdesk.storage.cache) ------------------------------------------------
# result: hit / miss / error (Redis failed) / skipped (L2 not tried: circuit open).
CACHE_REQUESTS = Counter(
    "clawdesk_cache_requests",
    "Layered-cache lookups and writes by cache, layer (l1/l2) and result",
    ["cache", "layer", "result"],
)

# --- Channels (connectors/, clawdesk/gateway) -------------------------------------
DISPATCH_SENDS = Counter(
    "clawdesk_dispatch_sends",
    "Reply send attempts by channel and outcome (sent, retry, dead_lettered)",
    ["channel", "outcome"],
)
DELIVERY_RECEIPTS = Counter(
    "clawdesk_delivery_receipts",
    "Provider delivery statuses received, by channel, status and whether the reply is ours",
    ["channel", "status", "matched"],
)
# result: allowed / limited / error (Redis failed: the request passed, fail open).
RATE_LIMIT_CHECKS = Counter(
    "clawdesk_rate_limit_checks",
    "Inbound rate-limit checks (one per customer or tenant in a request) by scope and result",
    ["scope", "result"],
)
RATE_LIMIT_FAILING_OPEN = Gauge(
    "clawdesk_rate_limit_failing_open",
    "1 while the inbound rate limiter lets every message pass because Redis failed",
)

# --- Human handoff (agents/handoff.py) -----------------------------------------------
# outcome: created / retry (a transient failure, retried later) / failed (refused for
# good) / not_configured (no ticket system: the conversation is in the inbox only).
HANDOFF_TICKETS = Counter(
    "clawdesk_handoff_tickets", "Handoff ticket attempts by outcome", ["outcome"]
)
HANDOFF_TICKET_FAILURES = Counter(
    "clawdesk_handoff_ticket_failures",
    "Failed attempts to open a handoff ticket, by reason (rate_limited, server_error,"
    " unavailable, timeout, auth, invalid)",
    ["reason"],
)
HANDOFF_TICKETS_PENDING = Gauge(
    "clawdesk_handoff_tickets_pending", "Handoffs still waiting for their ticket"
)

# --- LLM mode of the reply stage (clawdesk.llm) ---------------------------------------
# outcome: ok / error / timeout / rejected (the circuit was open: no request was sent).
LLM_REQUESTS = Counter(
    "clawdesk_llm_requests", "Chat-completion calls to the LLM endpoint", ["outcome"]
)
LLM_LATENCY = Histogram(
    "clawdesk_llm_request_seconds",
    "Time of one chat-completion call, retries included",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
)
# reason: breaker_open / timeout / error / token_cap / bad_response / budget_unavailable.
LLM_FALLBACKS = Counter(
    "clawdesk_llm_fallbacks",
    "Replies composed offline although LLM mode is on",
    ["reason"],
)
LLM_TOKENS = Counter("clawdesk_llm_tokens", "Tokens the LLM reported using", ["tenant", "kind"])
LLM_TOOL_CALLS = Counter(
    "clawdesk_llm_tool_calls", "Tools the LLM asked for, by skill and outcome", ["skill", "status"]
)
LLM_BREAKER_OPEN = Gauge(
    "clawdesk_llm_breaker_open", "1 while the LLM circuit breaker skips the LLM"
)

# --- Outcomes (docs/outcomes.md) -------------------------------------------------------
# Counted once per reply, when the dispatcher first stores it as sent (turn_outcomes).
TURN_OUTCOMES = Counter(
    "clawdesk_turn_outcomes",
    "Bot replies sent, by tenant, language and outcome (kb_answer, skill_resolved, ...)",
    ["tenant", "language", "outcome"],
)
# A vote that changes a reply's stored answer counts again; the same click twice does not.
REPLY_FEEDBACK = Counter(
    "clawdesk_reply_feedback",
    'Customers\' "did this help?" votes on bot replies, by tenant and helpful (true/false)',
    ["tenant", "helpful"],
)


REBALANCES = Counter(
    "clawdesk_rebalances",
    "Partition assignments a worker received (each rebalance of its group), by group",
    ["group"],
)
IN_FLIGHT = Gauge("clawdesk_stage_in_flight", "Events a stage is working on now", ["stage"])
# Exported by the lag exporter role (clawdesk.ops.exporter), read from the broker.
GROUP_LAG = Gauge(
    "clawdesk_group_lag",
    "Records a stage's group has not committed: high watermark - committed offset",
    ["stage", "group", "topic", "partition"],
)
GROUP_COMMITTED = Gauge(
    "clawdesk_group_committed_offset",
    "A stage group's committed offset (its rate is the stage's throughput)",
    ["stage", "group", "topic", "partition"],
)
TOPIC_HIGH_WATERMARK = Gauge(
    "clawdesk_topic_high_watermark",
    "The broker's high watermark of an input partition (its rate is the arrival rate)",
    ["topic", "partition"],
)
GROUP_MEMBERS = Gauge(
    "clawdesk_group_members", "Workers in a stage's consumer group", ["stage", "group"]
)
LAG_EXPORT_ERRORS = Counter(
    "clawdesk_lag_export_errors", "Failed reads of the groups from the broker", ["reason"]
)


def _exposed_names() -> tuple[str, ...]:
    """Every metric of this module by the names Prometheus exposes (counters get
    `_total`, histograms `_bucket`/`_sum`/`_count`): what alert rules may refer to."""
    names: list[str] = []
    for value in list(globals().values()):
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            if family.type == "counter":
                names.append(f"{family.name}_total")
            elif family.type == "histogram":
                names += [family.name] + [f"{family.name}_{s}" for s in ("bucket", "sum", "count")]
            else:
                names.append(family.name)
    return tuple(names)


METRIC_NAMES: tuple[str, ...] = _exposed_names()

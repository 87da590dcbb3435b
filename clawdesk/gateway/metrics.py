"""Prometheus metrics of the gateway (process-wide, registered once on import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "clawdesk_gateway_messages_total",
    "Web messages posted, by outcome (enqueued, unknown_tenant, unavailable).",
    ["outcome"],
)
REJECTED_REQUESTS = Counter(
    "clawdesk_gateway_rejected_requests_total",
    "Requests refused before reaching a handler, by reason (invalid, too_large).",
    ["reason"],
)
ENQUEUE_SECONDS = Histogram(
    "clawdesk_gateway_enqueue_seconds",
    "Time to have the broker acknowledge an inbound message.",
)
WEBSOCKETS = Gauge("clawdesk_gateway_websockets", "Open reply WebSockets.")
REPLIES = Counter(
    "clawdesk_gateway_replies_total",
    "Replies read from the outbound topic, by outcome (pushed, unrouted, malformed, resync).",
    ["outcome"],
)

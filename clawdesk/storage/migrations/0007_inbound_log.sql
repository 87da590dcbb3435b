-- The inbound log: every customer message the gateway acknowledged, recorded before the
-- acknowledgement. It is what makes a 202 durable on a broker that keeps topics in memory:
-- a message with no outcome yet is re-driven onto the inbound topic (same event, so every
-- effect downstream is deduplicated) until the pipeline settles it. It is also where a
-- message waits ("parked") while a dependency is down.
CREATE TABLE inbound_log (
    event_id         text PRIMARY KEY,
    tenant_id        text NOT NULL,
    conversation_id  text NOT NULL,
    channel          text NOT NULL,
    payload          bytea NOT NULL,
    accepted_at      timestamptz NOT NULL DEFAULT now(),
    -- NULL while open; then answered / duplicate / human / dead_lettered / unknown / abandoned.
    outcome          text,
    settled_at       timestamptz,
    redrives         integer NOT NULL DEFAULT 0,
    next_redrive_at  timestamptz NOT NULL,
    -- Why the message waits: the stage and the transient error that parked it.
    parked_stage     text,
    parked_reason    text,
    parked_at        timestamptz
);
-- The open messages, oldest due first: the re-driver's and the backlog's only query.
CREATE INDEX idx_inbound_log_open ON inbound_log (next_redrive_at) WHERE outcome IS NULL;
CREATE INDEX idx_inbound_log_conversation ON inbound_log (conversation_id, accepted_at);

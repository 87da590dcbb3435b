-- clawdesk initial schema: tenants, conversations, messages (partitioned by month),
-- intents, inbound de-duplication, deliveries and dead letters.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversations (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants(id),
    channel      text NOT NULL,
    customer_id  text NOT NULL,
    language     text,
    status       text NOT NULL DEFAULT 'bot' CHECK (status IN ('bot', 'human', 'closed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_conversations_tenant_updated ON conversations (tenant_id, updated_at DESC);

-- Messages are partitioned by month (the seed article's layout); a DEFAULT partition
-- catches anything outside the months created so far, so an insert never fails.
CREATE TABLE messages (
    id                  text NOT NULL,
    conversation_id     text NOT NULL,
    tenant_id           text NOT NULL,
    user_id             text NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('in', 'out')),
    author              text NOT NULL CHECK (author IN ('customer', 'bot', 'agent')),
    channel             text NOT NULL,
    channel_message_id  text,
    text                text NOT NULL,
    intent              text,
    confidence          real,
    "timestamp"         timestamptz NOT NULL,
    PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE TABLE messages_default PARTITION OF messages DEFAULT;

-- The indexes the seed article lists.
CREATE INDEX idx_messages_user_id ON messages (user_id);
CREATE INDEX idx_messages_timestamp ON messages ("timestamp");
CREATE INDEX idx_messages_conversation ON messages (conversation_id, "timestamp");

CREATE TABLE intents (
    message_id       text NOT NULL,
    conversation_id  text NOT NULL,
    tenant_id        text NOT NULL,
    intent           text NOT NULL,
    confidence       real NOT NULL,
    model_version    text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id)
);
CREATE INDEX idx_intents_confidence ON intents (confidence);

-- Durable de-duplication of inbound channel messages (at-least-once delivery upstream).
CREATE TABLE inbound_dedupe (
    tenant_id           text NOT NULL,
    channel             text NOT NULL,
    channel_message_id  text NOT NULL,
    event_id            text NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel, channel_message_id)
);

-- One row per reply: the dispatcher's record of what it has sent.
CREATE TABLE deliveries (
    reply_id             text PRIMARY KEY,
    conversation_id      text NOT NULL,
    tenant_id            text NOT NULL,
    channel              text NOT NULL,
    status               text NOT NULL,
    attempts             integer NOT NULL DEFAULT 0,
    provider_message_id  text,
    detail               text NOT NULL DEFAULT '',
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    stage       text NOT NULL,
    error       text NOT NULL,
    attempts    integer NOT NULL,
    event       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Create the monthly partition holding `ts` if it does not exist yet.
CREATE FUNCTION ensure_messages_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    start_month date := date_trunc('month', ts)::date;
    part text := format('messages_%s', to_char(start_month, 'YYYY_MM'));
BEGIN
    IF to_regclass(part) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)',
            part, start_month, (start_month + interval '1 month')::date);
    END IF;
    RETURN part;
END $$;

SELECT ensure_messages_partition(now());
SELECT ensure_messages_partition(now() + interval '1 month');

INSERT INTO tenants (id, name) VALUES ('demo', 'ClawShop (demo)');

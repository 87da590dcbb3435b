-- Human handoff: the ticket each handoff must get (retried until it exists), the API
-- keys of the agent inbox, and what a reply needs to reach the customer's channel.

-- One row per handoff event. The row is written before the ticket system is called, so a
-- handoff is never lost when that system is down or not configured: the conversation is
-- in the inbox already, and `pending` rows are retried at `next_attempt_at` by whichever
-- worker claims them first (a claim is a lease: `next_attempt_at` moves into the future).
CREATE TABLE handoff_tickets (
    event_id         text PRIMARY KEY,
    conversation_id  text NOT NULL,
    tenant_id        text NOT NULL,
    channel          text NOT NULL,
    customer_id      text NOT NULL,
    reason           text NOT NULL,
    last_message     text NOT NULL DEFAULT '',
    handed_off_at    timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'created', 'failed', 'not_configured')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    ticket_id        text,
    ticket_url       text,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_handoff_tickets_due ON handoff_tickets (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_handoff_tickets_conversation
    ON handoff_tickets (conversation_id, handed_off_at DESC);

-- Keys of the agent inbox, one tenant each. Only the SHA-256 of a key is stored: keys are
-- 256-bit random tokens, so a plain hash is enough (no password stretching needed).
CREATE TABLE tenant_api_keys (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    key_hash      text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX idx_tenant_api_keys_tenant ON tenant_api_keys (tenant_id);

-- The channel routing of the customer's latest message (WhatsApp phone number id, e-mail
-- thread, WeChat account...): a human agent's reply must go out the way the bot's would.
ALTER TABLE conversations ADD COLUMN reply_metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX idx_conversations_tenant_status ON conversations (tenant_id, status, updated_at DESC);

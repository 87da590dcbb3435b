-- LLM token usage: one row per chat-completion call (the ledger), and running totals
-- per conversation and per tenant and UTC day that the reply stage checks against its
-- caps before it calls the LLM.
--
-- The ledger is keyed by the completion id the endpoint returned, so recording the same
-- call twice (a retried transaction, a redelivered event replaying its bookkeeping)
-- counts it once; a second real call for a redelivered event is a real cost and has
-- its own id.

CREATE TABLE llm_calls (
    completion_id      text PRIMARY KEY,
    tenant_id          text NOT NULL,
    conversation_id    text NOT NULL,
    reply_id           text NOT NULL,
    model              text NOT NULL,
    prompt_tokens      integer NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  integer NOT NULL CHECK (completion_tokens >= 0),
    total_tokens       integer NOT NULL CHECK (total_tokens >= 0),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_llm_calls_tenant_created ON llm_calls (tenant_id, created_at DESC);
CREATE INDEX idx_llm_calls_conversation ON llm_calls (conversation_id, created_at);

CREATE TABLE llm_usage_conversation (
    conversation_id    text PRIMARY KEY,
    tenant_id          text NOT NULL,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    total_tokens       bigint NOT NULL DEFAULT 0,
    calls              integer NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE llm_usage_tenant_day (
    tenant_id          text NOT NULL,
    day                date NOT NULL,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    total_tokens       bigint NOT NULL DEFAULT 0,
    calls              integer NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

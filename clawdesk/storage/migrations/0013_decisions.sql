-- What the pipeline decided for each customer message: the baseline a replay (shadow
-- run) is compared with. Written by the reply stage (and by ingest when a human owns the
-- conversation and the bot stays quiet), once per message. docs/replay.md reads it.
CREATE TABLE decisions (
    message_id       text PRIMARY KEY,
    conversation_id  text NOT NULL,
    tenant_id        text NOT NULL,
    channel          text NOT NULL,
    received_at      timestamptz NOT NULL,
    language         text,
    intent           text,
    confidence       real,
    model_version    text,
    kb_version       text,
    answerable       boolean,
    top_doc_id       text,
    top_section      text,
    top_score        real,
    hits             jsonb NOT NULL DEFAULT '[]',
    skill            text,
    skill_status     text,
    skill_args       jsonb NOT NULL DEFAULT '{}',
    -- A side-effecting skill a shadow run recorded instead of running (never in production).
    would_run        boolean NOT NULL DEFAULT false,
    reply_id         text,
    reply_text       text,
    sources          jsonb NOT NULL DEFAULT '[]',
    outcome          text NOT NULL,
    handoff          boolean NOT NULL DEFAULT false,
    llm              boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_decisions_tenant_received ON decisions (tenant_id, received_at);
CREATE INDEX idx_decisions_conversation ON decisions (conversation_id, received_at);

-- Attachments: files customers sent (images, voice notes, documents, videos), fetched
-- from the provider by ingest, checked (size cap, sniffed type) and kept in the object
-- store under `object_key`. One row per file of a message; the id derives from the
-- message's event id and the provider's reference, so a redelivered message stores
-- nothing twice. A refused file is never stored: its row says why (`refused`), with no
-- object key.
CREATE TABLE attachments (
    id               text PRIMARY KEY,
    message_id       text NOT NULL,
    conversation_id  text NOT NULL,
    tenant_id        text NOT NULL,
    channel          text NOT NULL,
    kind             text NOT NULL,
    provider_ref     text NOT NULL,
    object_key       text,
    content_type     text,
    size_bytes       bigint,
    sha256           text,
    filename         text NOT NULL DEFAULT '',
    refused          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((object_key IS NULL) = (refused IS NOT NULL))
);
CREATE INDEX idx_attachments_conversation ON attachments (conversation_id, created_at);
CREATE INDEX idx_attachments_message ON attachments (message_id);

-- Workers that can answer now. A starting worker writes its row with no ready_at (so a
-- restarted worker's old "ready" no longer counts), then, once its services are built
-- (models trained or loaded, knowledge base embedded) and it owns partitions, beats every
-- few seconds; a stopping one deletes its row. The gateway's /ready asks for a ready one
-- seen recently, so "ready" means a message sent now is answered now.
CREATE TABLE worker_heartbeats (
    worker_id  text PRIMARY KEY,
    ready_at   timestamptz,
    seen_at    timestamptz NOT NULL DEFAULT now()
);

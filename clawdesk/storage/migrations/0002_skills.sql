-- Skills: which a tenant may run, a record of every run, and the stored results that
-- make a replayed event return the same answer without calling a provider again.

-- The per-tenant allow-list. A skill not listed (or disabled) is refused for the tenant,
-- whatever a customer's message says.
CREATE TABLE tenant_skills (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    skill       text NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, skill)
);

-- One row per run or refusal. No foreign keys: the audit must be writable even for a
-- tenant or conversation that is unknown (a refused, possibly hostile, request).
CREATE TABLE skill_audit (
    id               bigserial PRIMARY KEY,
    tenant_id        text NOT NULL,
    conversation_id  text NOT NULL,
    skill            text NOT NULL,
    arguments        jsonb NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key  text,
    status           text NOT NULL,
    result           jsonb,
    error            text,
    replayed         boolean NOT NULL DEFAULT false,
    duration_ms      integer,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_skill_audit_conversation ON skill_audit (conversation_id, created_at);
CREATE INDEX idx_skill_audit_tenant_created ON skill_audit (tenant_id, created_at DESC);
CREATE INDEX idx_skill_audit_key ON skill_audit (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A key is claimed (result NULL) before the provider is called and gets the result after.
-- A claim older than the runner's lease is taken over (the worker holding it died).
CREATE TABLE skill_idempotency (
    idempotency_key  text PRIMARY KEY,
    result           jsonb,
    claimed_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);

INSERT INTO tenant_skills (tenant_id, skill)
SELECT 'demo', skill
FROM unnest(ARRAY['order_status', 'order_list', 'track_shipment', 'refund', 'cancel_order',
                  'crm_lookup', 'create_ticket', 'handoff']) AS skill
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = 'demo')
ON CONFLICT DO NOTHING;

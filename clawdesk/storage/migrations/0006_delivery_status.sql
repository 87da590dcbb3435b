-- Delivery status as the providers report it: a claim lease for the dispatcher, a
-- status that only moves forward whoever writes it, and the timeline of every reply.

-- A reply being sent is 'sending' until claimed_until; a worker that finds it so waits
-- (another worker is sending it), and takes it over once the lease has run out.
ALTER TABLE deliveries ADD COLUMN claimed_until timestamptz;
ALTER TABLE deliveries ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();

-- Status webhooks that name the provider's message id rather than our reply id.
CREATE INDEX idx_deliveries_provider_message
    ON deliveries (channel, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX idx_deliveries_conversation ON deliveries (conversation_id, created_at);

-- The order a delivery's status may move in. Providers send status webhooks out of order
-- (a 'sent' after the 'delivered'), and the dispatcher may record 'sent' after a fast
-- 'delivered' webhook: a lower rank never overwrites a higher one. 'failed' ranks above
-- 'sent' (the provider took the message, then could not deliver it) and below
-- 'delivered' (proof that it arrived beats a failure recorded on a lost answer).
CREATE FUNCTION delivery_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status
        WHEN 'queued' THEN 0 WHEN 'sending' THEN 1 WHEN 'sent' THEN 2
        WHEN 'failed' THEN 3 WHEN 'delivered' THEN 4 WHEN 'read' THEN 5 ELSE 0 END
$$;

CREATE FUNCTION deliveries_status_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A claim ('sending') may restart a queued, failed (replayed) or expired delivery.
    IF NEW.status = 'sending' AND OLD.status IN ('queued', 'sending', 'failed') THEN
        RETURN NEW;
    END IF;
    -- A released claim goes back to 'queued' for the next attempt.
    IF NEW.status = 'queued' AND OLD.status = 'sending' THEN
        RETURN NEW;
    END IF;
    IF delivery_status_rank(NEW.status) < delivery_status_rank(OLD.status) THEN
        NEW.status := OLD.status;
        NEW.detail := OLD.detail;
        NEW.claimed_until := OLD.claimed_until;
    END IF;
    NEW.provider_message_id := COALESCE(NEW.provider_message_id, OLD.provider_message_id);
    RETURN NEW;
END $$;

CREATE TRIGGER deliveries_status_forward BEFORE UPDATE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION deliveries_status_forward();

-- Every status a reply went through, with who said so, for the per-message API.
CREATE TABLE delivery_events (
    id                   bigserial PRIMARY KEY,
    reply_id             text NOT NULL REFERENCES deliveries(reply_id) ON DELETE CASCADE,
    status               text NOT NULL,
    provider_message_id  text,
    detail               text NOT NULL DEFAULT '',
    recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_delivery_events_reply ON delivery_events (reply_id, id);

CREATE FUNCTION deliveries_log_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO delivery_events (reply_id, status, provider_message_id, detail)
        VALUES (NEW.reply_id, NEW.status, NEW.provider_message_id, NEW.detail);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_log_status AFTER INSERT OR UPDATE OF status ON deliveries
    FOR EACH ROW EXECUTE FUNCTION deliveries_log_status();

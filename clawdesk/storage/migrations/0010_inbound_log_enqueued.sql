-- When a logged message last reached the broker. NULL: its enqueue failed (the broker
-- was down) and it waits for the re-driver; a newer message of the same conversation
-- is enqueued only after it, so the conversation's replies stay in order.
ALTER TABLE inbound_log ADD COLUMN enqueued_at timestamptz;

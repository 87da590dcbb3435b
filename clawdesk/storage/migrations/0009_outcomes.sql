-- Outcomes: what each bot reply did (turn_outcomes), what the customer said of it
-- (reply_feedback), and what each conversation came to (the conversation_outcomes view).
-- docs/outcomes.md defines them and has the queries over them.

-- One row per bot reply sent, written by the dispatcher in the transaction that records
-- the reply sent (keyed by reply id, so a redelivered reply is counted once).
CREATE TABLE turn_outcomes (
    reply_id         text PRIMARY KEY,
    conversation_id  text NOT NULL,
    tenant_id        text NOT NULL,
    channel          text NOT NULL,
    language         text NOT NULL,
    intent           text NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('kb_answer', 'skill_resolved',
                     'skill_pending', 'skill_failed', 'handoff', 'clarify', 'small_talk')),
    llm              boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_turn_outcomes_conversation ON turn_outcomes (conversation_id, created_at);
CREATE INDEX idx_turn_outcomes_tenant_created ON turn_outcomes (tenant_id, created_at);

-- "Did this help?" on a bot reply: one row per reply, a second click changes it.
CREATE TABLE reply_feedback (
    reply_id         text PRIMARY KEY,
    conversation_id  text NOT NULL,
    tenant_id        text NOT NULL,
    helpful          boolean NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_reply_feedback_conversation ON reply_feedback (conversation_id);

-- Each conversation's outcome, from its bot turns (a view: an outcome like `abandoned`
-- depends on how long the conversation has been quiet, so it is read, never stored).
CREATE VIEW conversation_outcomes AS
WITH ranked AS (
    SELECT t.*, row_number() OVER (
        PARTITION BY t.conversation_id ORDER BY t.created_at DESC, t.reply_id DESC
    ) AS from_end
    FROM turn_outcomes t
), bot AS (
    SELECT
        conversation_id,
        count(*) AS turns,
        max(created_at) AS last_bot_at,
        max(language) FILTER (WHERE from_end = 1) AS language,
        max(outcome) FILTER (WHERE from_end = 1) AS last_outcome,
        max(outcome) FILTER (WHERE from_end = 2) AS previous_outcome,
        count(*) FILTER (WHERE outcome = 'clarify') AS clarify_turns,
        bool_or(outcome = 'handoff') AS handoff,
        bool_or(outcome IN ('kb_answer', 'skill_resolved')) AS resolving
    FROM ranked
    GROUP BY conversation_id
), feedback AS (
    SELECT conversation_id,
        count(*) FILTER (WHERE helpful) AS helpful,
        count(*) FILTER (WHERE NOT helpful) AS unhelpful
    FROM reply_feedback
    GROUP BY conversation_id
)
SELECT
    c.id AS conversation_id,
    c.tenant_id,
    c.channel,
    COALESCE(b.language, c.language) AS language,
    c.created_at AS started_at,
    COALESCE(b.turns, 0) AS turns,
    COALESCE(b.clarify_turns, 0) AS clarify_turns,
    b.last_outcome,
    -- A person took part: a handoff, a human owning it now, or a human agent's reply.
    (COALESCE(b.handoff, false) OR c.status = 'human' OR EXISTS (
        SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.author = 'agent'
    )) AS human_involved,
    COALESCE(f.helpful, 0) AS helpful,
    COALESCE(f.unhelpful, 0) AS unhelpful,
    GREATEST(c.updated_at, b.last_bot_at) AS last_activity_at,
    CASE
        WHEN b.handoff THEN 'handed_off'
        WHEN b.last_outcome IN ('kb_answer', 'skill_resolved')
            OR (b.last_outcome = 'small_talk' AND b.resolving) THEN 'resolved'
        WHEN b.last_outcome = 'clarify' AND b.previous_outcome = 'clarify' THEN 'clarify_loop'
        WHEN b.last_outcome IN ('clarify', 'skill_pending')
            AND GREATEST(c.updated_at, b.last_bot_at) < now() - interval '30 minutes'
            THEN 'abandoned'
        ELSE 'open'
    END AS outcome
FROM conversations c
LEFT JOIN bot b ON b.conversation_id = c.id
LEFT JOIN feedback f ON f.conversation_id = c.id;

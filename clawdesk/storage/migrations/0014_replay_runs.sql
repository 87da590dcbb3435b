-- Replay (shadow) runs: one row per run. A run's results live in its own schema
-- (replay_<name>: the pipeline's tables, written by the shadow workers through their
-- search_path), never in these production tables. docs/replay.md describes a run.
CREATE TABLE replay_runs (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9_]{1,40}$'),
    schema_name   text NOT NULL UNIQUE,
    status        text NOT NULL CHECK (status IN ('running', 'stopped', 'finished', 'failed')),
    candidate     jsonb NOT NULL DEFAULT '{}',
    source        jsonb NOT NULL DEFAULT '{}',
    total         integer NOT NULL DEFAULT 0,
    attempt       integer NOT NULL DEFAULT 0,
    app_id        text NOT NULL DEFAULT '',
    topic_prefix  text NOT NULL DEFAULT '',
    driver_pid    integer,
    worker_pid    integer,
    error         text NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

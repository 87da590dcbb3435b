-- Dead letters that Postgres always takes (issue 15). `event` stays the letter's text,
-- with NULs and invalid UTF-8 escaped and a large event cut to its head; `body` keeps
-- the exact raw bytes of that head, `body_bytes` and `body_sha256` the whole event's
-- length and hash. `letter_id` makes a letter land once, however often it is written
-- (a worker's spool flushed again after a crash); rows from before it have none.
ALTER TABLE dead_letters
    ADD COLUMN letter_id   text,
    ADD COLUMN body        bytea,
    ADD COLUMN body_bytes  bigint,
    ADD COLUMN body_sha256 text,
    ADD COLUMN truncated   boolean NOT NULL DEFAULT false,
    ADD COLUMN escaped     boolean NOT NULL DEFAULT false,
    ADD COLUMN occurred_at timestamptz;

CREATE UNIQUE INDEX idx_dead_letters_letter_id ON dead_letters (letter_id);

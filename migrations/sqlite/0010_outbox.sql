-- Work that leaves the server (back-channel logout tokens now, mail later), written in the transaction of the
-- change it belongs to and delivered by a background worker. A row is due when next_attempt_at has passed;
-- claiming it pushes next_attempt_at past the delivery's lease, so a worker that dies leaves it to be retried.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    -- JSON, what the kind's deliverer needs; nothing secret (tokens are signed at delivery).
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    -- Set when delivered, or given up on after the last retry.
    done_at BIGINT,
    outcome TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE done_at IS NULL;

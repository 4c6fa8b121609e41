-- Webhook endpoints (SPEC 3.3). `cursor_seq`: the events up to it have their deliveries made.
CREATE TABLE endpoints (
    id                          TEXT PRIMARY KEY,
    url                         TEXT NOT NULL,
    types                       TEXT,              -- JSON array; NULL: every type
    description                 TEXT NOT NULL,
    secret                      TEXT NOT NULL,     -- sealed
    previous_secret             TEXT,              -- sealed; signs too until it expires
    previous_secret_expires_ms  BIGINT,
    enabled                     BOOLEAN NOT NULL,
    disabled_reason             TEXT,
    failures_in_a_row           BIGINT NOT NULL,
    cursor_seq                  BIGINT NOT NULL,
    created_ms                  BIGINT NOT NULL,
    updated_ms                  BIGINT NOT NULL
);

-- One event to one endpoint. `pending` covers waiting and in flight (leased); a lease that has
-- run out may be claimed by anyone.
CREATE TABLE deliveries (
    endpoint_id      TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    event_id         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    status           TEXT NOT NULL,       -- pending, delivered, failed
    attempts         BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   BIGINT,
    created_ms       BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, seq)
);
-- Claims walk the pending deliveries of an endpoint in seq order and stop at their limit.
CREATE INDEX deliveries_pending ON deliveries (endpoint_id, seq) WHERE status = 'pending';
CREATE INDEX deliveries_subject ON deliveries (endpoint_id, subject, seq) WHERE status = 'pending';
CREATE INDEX deliveries_event ON deliveries (endpoint_id, event_id);

CREATE TABLE attempts (
    id             BIGSERIAL PRIMARY KEY,
    endpoint_id    TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    at_ms          BIGINT NOT NULL,
    status_code    BIGINT,
    latency_ms     BIGINT NOT NULL,
    response       TEXT,               -- the first 1 KiB of the answer
    error          TEXT
);
CREATE INDEX attempts_delivery ON attempts (endpoint_id, seq, id);

-- How far events are published to NATS, and which instance publishes.
CREATE TABLE nats_position (
    one             INTEGER PRIMARY KEY CHECK (one = 1),
    seq             BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT
);
INSERT INTO nats_position VALUES (1, 0, NULL, NULL);

-- Deliveries are a queue: rows change state within seconds and most updates touch the pending
-- indexes. Room on each page keeps the lease updates HOT; vacuuming and analysing after a
-- thousand changed rows (not a fifth of the table) keeps claims off dead index entries and the
-- planner's idea of the table current.
ALTER TABLE deliveries SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.0,
    autovacuum_analyze_threshold = 1000, autovacuum_vacuum_cost_delay = 0);

-- Every applied change, as the event the rest of the platform reads (SPEC 3.1).
-- `seq` is (the writing transaction's id << 20) | its ordinal in the transaction, and readers
-- take only events below the oldest transaction still running: see store/src/postgres/events.rs.
CREATE TABLE events (
    seq          BIGINT PRIMARY KEY,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    recorded_ms  BIGINT NOT NULL,
    app_key      TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    data         TEXT NOT NULL
);

CREATE TABLE events_pruned (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    through_seq   BIGINT NOT NULL
);
INSERT INTO events_pruned VALUES (1, 0);

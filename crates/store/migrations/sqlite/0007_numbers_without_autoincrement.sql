-- The inbox and the events table number their rows without AUTOINCREMENT. AUTOINCREMENT reads
-- and rewrites the `sqlite_sequence` row of its table on every insert: about 4,000 instructions
-- an insert, two inserts a call. Neither table needs it:
-- - nothing is ever removed from the inbox, so the next rowid (one above the largest) is always
--   a number never used;
-- - events are pruned, oldest first and possibly all of them, so the writer numbers an event
--   itself: one above the largest `seq` left or, with none left, above the largest pruned
--   (`events_pruned`); a pruned number is never handed out again (sqlite/tx.rs).
-- SQLite cannot drop AUTOINCREMENT in place: both tables are copied, rowids and all.

CREATE TABLE inbox_next (
    id               INTEGER PRIMARY KEY,
    call_id          TEXT NOT NULL UNIQUE,
    received_ms      INTEGER NOT NULL,
    app_key          TEXT NOT NULL,
    method           TEXT NOT NULL,
    params           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    error_code       INTEGER,
    biz_code         TEXT,
    subject          TEXT,
    idempotency_key  TEXT,
    detail           TEXT NOT NULL,
    response         TEXT NOT NULL
);
INSERT INTO inbox_next (id, call_id, received_ms, app_key, method, params, outcome, error_code,
        biz_code, subject, idempotency_key, detail, response)
    SELECT id, call_id, received_ms, app_key, method, params, outcome, error_code,
        biz_code, subject, idempotency_key, detail, response
    FROM inbox ORDER BY id;
-- Dropping a table fires none of its triggers; they go with it and are made again below.
DROP TABLE inbox;
ALTER TABLE inbox_next RENAME TO inbox;
CREATE INDEX inbox_by_app ON inbox (app_key, id);
CREATE TRIGGER inbox_no_update BEFORE UPDATE ON inbox
BEGIN SELECT RAISE(ABORT, 'the inbox is append-only'); END;
CREATE TRIGGER inbox_no_delete BEFORE DELETE ON inbox
BEGIN SELECT RAISE(ABORT, 'the inbox is append-only'); END;

CREATE TABLE events_next (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    recorded_ms  INTEGER NOT NULL,
    app_key      TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,      -- JSON object
    data         TEXT NOT NULL       -- JSON object
);
INSERT INTO events_next (seq, id, type, recorded_ms, app_key, request_id, subject, data)
    SELECT seq, id, type, recorded_ms, app_key, request_id, subject, data
    FROM events ORDER BY seq;
-- With every event pruned, the next number follows the largest pruned: make sure that is the
-- largest AUTOINCREMENT ever handed out.
UPDATE events_pruned SET through_seq = max(through_seq,
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))
WHERE NOT EXISTS (SELECT 1 FROM events);
DROP TABLE events;
ALTER TABLE events_next RENAME TO events;

DELETE FROM sqlite_sequence WHERE name IN ('inbox', 'events');

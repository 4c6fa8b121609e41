-- Every applied change, as the event the rest of the platform reads (SPEC 3.1). The single
-- writer inserts them in commit order, so `seq` grows in commit order; AUTOINCREMENT keeps a
-- pruned number from ever being handed out again.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    recorded_ms  INTEGER NOT NULL,
    app_key      TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,      -- JSON object
    data         TEXT NOT NULL       -- JSON object
);

-- How far the feed has been pruned: a cursor below this has missed events.
CREATE TABLE events_pruned (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    through_seq   INTEGER NOT NULL
);
INSERT INTO events_pruned VALUES (1, 0);

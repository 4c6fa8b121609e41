-- The console and the reconciliation report (SPEC 4).

-- Calls counted per minute, app, outcome and code, rolled up from the inbox's tail a few
-- thousand rows at a time (never on a call's own path), plus the calls refused before they
-- were authenticated (outcome `rejected`), which the inbox does not hold. `first_id`/`last_id`
-- bound the minute's inbox ids, so that a time range becomes an id range on the primary key.
CREATE TABLE call_minutes (
    minute_ms  INTEGER NOT NULL,
    app_key    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    code       TEXT NOT NULL,      -- the TOP error code or the business code; '' for none
    n          INTEGER NOT NULL,
    first_id   INTEGER NOT NULL,   -- 0 for `rejected`
    last_id    INTEGER NOT NULL,
    PRIMARY KEY (minute_ms, app_key, outcome, code)
) WITHOUT ROWID;

-- How far `call_minutes` reaches: inbox ids up to and including this one are counted.
CREATE TABLE call_minutes_upto (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id   INTEGER NOT NULL
);
INSERT INTO call_minutes_upto (singleton, id) VALUES (1, 0);

-- What the reconciliation report lists, found without a scan of every loan note or process.
CREATE INDEX loans_flagged ON loans (updated_ms) WHERE needs_reconciliation = 1;
CREATE INDEX processes_in_processing ON processes (updated_ms) WHERE status = 'IN_PROCESSING';

-- A flag an operator resolved stays, marked with when; the loan note shows the open ones.
ALTER TABLE loan_flags ADD COLUMN resolved_ms INTEGER;

-- Console sign-ins: only a hash of the session cookie is kept.
CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_ms);

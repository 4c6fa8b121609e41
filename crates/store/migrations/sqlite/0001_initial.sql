CREATE TABLE apps (
    app_key                    TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_ms INTEGER,
    channels                   TEXT,    -- JSON array; NULL: any channel
    methods                    TEXT,    -- JSON array; NULL: every method
    rate_limit                 INTEGER, -- calls per second; NULL: the gateway default
    enabled                    INTEGER NOT NULL DEFAULT 1,
    created_ms                 INTEGER NOT NULL,
    updated_ms                 INTEGER NOT NULL
);

CREATE TABLE processes (
    channel_id    TEXT NOT NULL,
    process_type  TEXT NOT NULL,
    process_no    TEXT NOT NULL,
    user          TEXT NOT NULL,
    user_id       INTEGER NOT NULL,
    status        TEXT NOT NULL,
    submit_ms     INTEGER,
    complete_ms   INTEGER,
    fund_products TEXT,                 -- JSON array
    app_key       TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (channel_id, process_type, process_no)
) WITHOUT ROWID;

CREATE TABLE loans (
    loan_apply_no         TEXT PRIMARY KEY,
    status                TEXT NOT NULL,
    app_key               TEXT NOT NULL,
    customer_id           TEXT,
    institution_loan_no   TEXT,
    last_change_ms        INTEGER NOT NULL,
    needs_reconciliation  INTEGER NOT NULL DEFAULT 0,
    created_ms            INTEGER NOT NULL,
    updated_ms            INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE loan_flags (
    id              INTEGER PRIMARY KEY,
    loan_apply_no   TEXT NOT NULL,
    flag            TEXT NOT NULL       -- JSON of the domain's Flag
);
CREATE INDEX loan_flags_by_loan ON loan_flags (loan_apply_no, id);

CREATE TABLE idempotency (
    app_key       TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    response      TEXT NOT NULL,        -- JSON of the response fields first answered
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (app_key, request_id)
) WITHOUT ROWID;

CREATE TABLE inbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
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
-- Every index is paid for on every call; method and outcome filters of the read API walk the
-- app index or the table newest-first instead.
CREATE INDEX inbox_by_subject ON inbox (subject, id) WHERE subject IS NOT NULL;
CREATE INDEX inbox_by_app ON inbox (app_key, id);

-- The inbox is an audit trail: nothing in it is ever changed or removed.
CREATE TRIGGER inbox_no_update BEFORE UPDATE ON inbox
BEGIN SELECT RAISE(ABORT, 'the inbox is append-only'); END;
CREATE TRIGGER inbox_no_delete BEFORE DELETE ON inbox
BEGIN SELECT RAISE(ABORT, 'the inbox is append-only'); END;

-- Operator tokens (SPEC 5): only a hash of each token's secret is kept. A name is unique among
-- the tokens not revoked, so a revoked name can be given again.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    revoked_ms   INTEGER
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_ms IS NULL;

-- Every change an operator makes: who, from where, what, when. Written in the transaction of
-- the change itself.
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    source   TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    detail   TEXT NOT NULL      -- JSON object
);
CREATE INDEX audit_target ON audit (target, id);

-- Aegis state store, schema version 1 (aegis/workflow/store.py applies it).
-- The store is writable by every member of group `aegis`: nothing read back from it is
-- trusted. Each request and history row carries row_hash (SHA-256 over the canonical JSON of
-- its fields), history rows chain by prev_hash, artifacts are addressed by their SHA-256,
-- and the reader checks all three.

CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    plan_id TEXT,
    plan_hash TEXT,
    lease_owner TEXT,
    lease_expires_at TEXT,
    head TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX requests_state_updated ON requests (state, updated_at);
CREATE INDEX requests_updated ON requests (updated_at);
CREATE INDEX requests_lease ON requests (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX requests_plan_id ON requests (plan_id);
CREATE INDEX requests_plan_hash ON requests (plan_hash);

-- Append-only: one row per transition (seq 0 is the creation).
CREATE TABLE history (
    request_id TEXT NOT NULL REFERENCES requests (id),
    seq INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    evidence TEXT NOT NULL,
    prev_hash TEXT,
    row_hash TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE TRIGGER history_append_only_update BEFORE UPDATE ON history
BEGIN
    SELECT RAISE(ABORT, 'history is append-only');
END;
CREATE TRIGGER history_append_only_delete BEFORE DELETE ON history
BEGIN
    SELECT RAISE(ABORT, 'history is append-only');
END;

-- Content-addressed: sha256 is the SHA-256 hex of body.
CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- Which artifacts a request carries, of which kind, written by which history row.
CREATE TABLE request_artifacts (
    request_id TEXT NOT NULL REFERENCES requests (id),
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES artifacts (sha256),
    path TEXT,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (request_id, kind, sha256)
);
CREATE INDEX request_artifacts_sha ON request_artifacts (sha256);

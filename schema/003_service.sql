-- 003_service: what the HTTP service keeps — portal sessions, conversations
-- and their messages (questions, answers, citations), feedback, token usage
-- per user / knowledge base / provider, stored original uploads, and
-- per-knowledge-base options (local_only).

ALTER TABLE kb ADD COLUMN local_only INTEGER NOT NULL DEFAULT 0;  -- never send chunks to remote providers
ALTER TABLE documents ADD COLUMN blob_sha256 TEXT;               -- original upload in blobs/ (content-addressed)

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,   -- SHA-256 of the session cookie value
    user_id     INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,           -- CSRF token required on state-changing requests
    created_at  INTEGER NOT NULL DEFAULT (unixepoch()),
    expires_at  INTEGER NOT NULL
);

CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER REFERENCES principals(id) ON DELETE CASCADE,  -- NULL: the local administrator
    kb_id      INTEGER NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
    title      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL DEFAULT (unixepoch()),
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX conversations_user ON conversations(user_id, updated_at);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question        TEXT NOT NULL,
    standalone      TEXT,                -- the rewritten stand-alone query, when rewritten
    answer          TEXT NOT NULL DEFAULT '',
    citations       TEXT,                -- JSON array as returned to the client
    not_found       INTEGER NOT NULL DEFAULT 0,
    provider        TEXT,                -- "extractive" or the provider name
    created_at      INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);

CREATE TABLE feedback (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    INTEGER REFERENCES principals(id) ON DELETE SET NULL,
    rating     INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment    TEXT,
    created_at INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (message_id, user_id)
);

CREATE TABLE usage (
    day               TEXT NOT NULL,     -- YYYY-MM-DD (UTC)
    user_name         TEXT NOT NULL,     -- "user:NAME" or "admin"
    kb_id             INTEGER NOT NULL,
    provider          TEXT NOT NULL,
    requests          INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_name, kb_id, provider)
) WITHOUT ROWID;

-- 002_acl: principals (users and groups), memberships, per-document read
-- ACLs, API tokens and the audit log. Documents that existed before this
-- migration stay readable by everyone.

CREATE TABLE principals (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    name          TEXT NOT NULL,
    password_hash TEXT,                -- users only: "scrypt$N$r$p$SALT$HASH" (base64)
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (kind, name)
);
INSERT INTO principals(kind, name) VALUES ('group', 'everyone');

-- member_id may be a user or (nested) a group
CREATE TABLE memberships (
    group_id  INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX memberships_member ON memberships(member_id);

CREATE TABLE doc_acl (
    doc_id       INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    principal_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (doc_id, principal_id)
) WITHOUT ROWID;
CREATE INDEX doc_acl_principal ON doc_acl(principal_id, doc_id);

INSERT INTO doc_acl(doc_id, principal_id)
    SELECT d.id, p.id FROM documents d, principals p WHERE p.kind = 'group' AND p.name = 'everyone';

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    token_sha256 TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the token; the token itself is never stored
    prefix       TEXT NOT NULL,          -- first characters, to tell tokens apart in listings
    scopes       TEXT NOT NULL,          -- comma-separated: search,ask,ingest,admin
    created_at   INTEGER NOT NULL DEFAULT (unixepoch()),
    expires_at   INTEGER,                -- NULL = never
    revoked_at   INTEGER,
    last_used_at INTEGER
);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL DEFAULT (unixepoch()),
    principal TEXT NOT NULL,             -- "user:NAME" or "admin"
    action    TEXT NOT NULL,             -- search | ask | ...
    kb_id     INTEGER,
    query     TEXT,
    results   TEXT                       -- JSON array of {"doc": ID, "chunk": ID}
);
CREATE INDEX audit_at ON audit_log(at);

-- bumped on every ACL or membership change, so caches of allowed sets
-- can be validated with one read
CREATE TABLE acl_version (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT INTO acl_version VALUES (1, 0);

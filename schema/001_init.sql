-- 001_init: knowledge bases, documents, chunks, their FTS5 index, vectors
-- and the change log the FAISS index replays. SQLite is the truth; the
-- vector index under vectors/ is derived from `vectors` + `changes`.

CREATE TABLE kb (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    embed_model TEXT,                 -- recorded at first ingest
    embed_dim   INTEGER,
    created_at  INTEGER NOT NULL DEFAULT (unixepoch())
);
INSERT INTO kb(name) VALUES ('default');

CREATE TABLE documents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kb_id       INTEGER NOT NULL REFERENCES kb(id),
    ext_id      TEXT NOT NULL,        -- --jsonl id, or the file's path
    source      TEXT NOT NULL,        -- path or URI it came from
    title       TEXT NOT NULL,
    format      TEXT,                 -- txt | md | html | ...
    charset     TEXT,                 -- detected source encoding
    sha256      TEXT NOT NULL,        -- of the original bytes
    bytes       INTEGER NOT NULL DEFAULT 0,
    version     INTEGER NOT NULL DEFAULT 1,
    status      TEXT NOT NULL DEFAULT 'indexed',   -- indexed | failed
    error       TEXT,
    metadata    TEXT,                 -- JSON object
    nchunks     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL DEFAULT (unixepoch()),
    updated_at  INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (kb_id, ext_id)
);

CREATE TABLE chunks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id      INTEGER NOT NULL REFERENCES documents(id),
    ordinal     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    heading     TEXT NOT NULL DEFAULT '',
    page        INTEGER NOT NULL DEFAULT 0,
    start_char  INTEGER NOT NULL,
    end_char    INTEGER NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc_id, ordinal);

-- External-content FTS5 over chunks(text, heading) with zhiku's tokenizer.
-- Rows are added/removed explicitly by the store in the same transaction.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, heading, content='chunks', content_rowid='id', tokenize='zhiku'
);

CREATE TABLE vectors (
    chunk_id    INTEGER PRIMARY KEY,  -- = chunks.id
    vec         BLOB NOT NULL         -- float32[dim], L2-normalised
);

-- Monotonic log of chunk adds (op 1) and deletes (op 0) per knowledge base;
-- the vector index records the last seq it applied and replays the rest.
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kb_id       INTEGER NOT NULL,
    chunk_id    INTEGER NOT NULL,
    op          INTEGER NOT NULL
);
CREATE INDEX changes_kb ON changes(kb_id, seq);

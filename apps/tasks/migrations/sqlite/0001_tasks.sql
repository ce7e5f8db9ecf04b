-- A task; a deleted one stays as a tombstone so the delta feed can say so.
-- `version` orders every change (writes are serialized, so it is also the
-- commit order): the feed's cursor.
CREATE TABLE tasks (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX tasks_version ON tasks (version);
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    at   INTEGER NOT NULL
);

-- Posts of the feed. `seq` orders the feed and is the delta cursor: SQLite
-- has one writer at a time, so rows commit in `seq` order. `txid` exists
-- for parity with PostgreSQL and is always 0 here.
CREATE TABLE posts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    txid       INTEGER NOT NULL DEFAULT 0,
    id         TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL,
    location   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

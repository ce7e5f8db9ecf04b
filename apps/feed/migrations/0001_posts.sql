-- Posts of the feed. `seq` orders the feed (newest first) and will be the
-- cursor of the delta feed; `id` is the UUID the browser made.
CREATE TABLE posts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL,
    location   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

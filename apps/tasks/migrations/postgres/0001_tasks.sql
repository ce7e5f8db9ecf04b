-- See the SQLite migration. On PostgreSQL, writers take an advisory lock
-- (src/db.rs), so versions are assigned and committed in one order.
CREATE TABLE tasks (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    done       BIGINT NOT NULL DEFAULT 0,
    deleted    BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tasks_version ON tasks (version);
CREATE TABLE events (
    seq  BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    at   BIGINT NOT NULL
);

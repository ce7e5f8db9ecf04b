-- Posts of the feed. With several servers writing, `seq` values commit out
-- of order, so the delta cursor is (txid, seq): the writing transaction's
-- id, then the sequence. A reader only returns rows of transactions older
-- than every transaction still running (the snapshot's xmin), so no row can
-- later appear behind a cursor already handed out.
CREATE TABLE posts (
    seq        BIGSERIAL PRIMARY KEY,
    txid       BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    id         TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL,
    location   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX posts_delta ON posts (txid, seq);

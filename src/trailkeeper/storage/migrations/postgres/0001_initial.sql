-- Text is COLLATE "C" throughout: byte order, and lower() folds ASCII only, as SQLite's
-- BINARY and NOCASE do; B-tree comparisons are memcmp whatever the database's locale.

-- Events: indexed scalar columns, the REST document and its full-text vector.
-- Ids come from events_id_seq, taken by the writer in blocks under an advisory lock (see
-- postgres.py), so they grow in commit order across processes; there is no column default.
CREATE SEQUENCE events_id_seq AS bigint;
CREATE TABLE events (
    id          bigint PRIMARY KEY,
    ts          bigint NOT NULL,           -- epoch milliseconds, UTC
    area        text COLLATE "C" NOT NULL,
    level       text COLLATE "C" NOT NULL,
    category    text COLLATE "C" NOT NULL,
    action      text COLLATE "C" NOT NULL,
    author_id   text COLLATE "C",
    author_name text COLLATE "C",
    source      text COLLATE "C",
    method      text COLLATE "C",
    node        text COLLATE "C",
    system      text COLLATE "C",
    uid         text COLLATE "C",
    doc         bytea NOT NULL,            -- the REST document (without id), exact JSON bytes
    search      tsvector NOT NULL          -- to_tsvector('simple', search text of the event)
);
ALTER SEQUENCE events_id_seq OWNED BY events.id;
-- Every index ends in (ts, id), so each serves keyset order.
CREATE INDEX events_by_time ON events (ts, id);
CREATE INDEX events_by_action ON events (action, ts, id);
CREATE INDEX events_by_category ON events (category, ts, id);
CREATE INDEX events_by_author ON events (author_id, ts, id);
CREATE INDEX events_search ON events USING gin (search);

-- Every affected object of every event (Atlassian indexes only the first five). One B-tree,
-- keyed for "events about this object, newest first".
CREATE TABLE event_objects (
    type      text COLLATE "C" NOT NULL,  -- upper-cased
    object_id text COLLATE "C" NOT NULL,  -- '' when the object has no id
    ts        bigint NOT NULL,
    event_id  bigint NOT NULL,
    pos       integer NOT NULL,
    name      text COLLATE "C" NOT NULL,
    PRIMARY KEY (type, object_id, ts, event_id, pos)
);

-- Client idempotency keys: same uid + same fingerprint = same event.
CREATE TABLE event_uids (
    uid         text COLLATE "C" PRIMARY KEY,
    event_id    bigint NOT NULL,
    fingerprint bytea NOT NULL
);

-- Catalogues for pickers, lookups and the CLI's class list.
CREATE TABLE catalogue_actions (
    action       text COLLATE "C" NOT NULL,
    category     text COLLATE "C" NOT NULL,
    action_key   text COLLATE "C",
    category_key text COLLATE "C",
    area         text COLLATE "C" NOT NULL,
    PRIMARY KEY (action, category)
);

CREATE TABLE catalogue_authors (
    author_id text COLLATE "C" PRIMARY KEY,
    name      text COLLATE "C" NOT NULL,
    type      text COLLATE "C" NOT NULL,
    uri       text COLLATE "C",
    last_seen bigint NOT NULL
);
CREATE INDEX catalogue_authors_by_name ON catalogue_authors (lower(name));

CREATE TABLE catalogue_objects (
    type      text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,  -- '' when the object has no id
    name      text COLLATE "C" NOT NULL,
    uri       text COLLATE "C",
    last_seen bigint NOT NULL,
    PRIMARY KEY (type, object_id, name)
);
CREATE INDEX catalogue_objects_by_name ON catalogue_objects (upper(type), lower(name));

CREATE TABLE users (
    name          text COLLATE "C" PRIMARY KEY,
    password_hash text COLLATE "C" NOT NULL,
    role          text COLLATE "C" NOT NULL,
    disabled      boolean NOT NULL DEFAULT false
);

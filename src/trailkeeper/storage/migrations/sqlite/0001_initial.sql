-- Events: indexed scalar columns plus the REST document. id is never reused (AUTOINCREMENT).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          INTEGER NOT NULL,          -- epoch milliseconds, UTC
    area        TEXT NOT NULL,
    level       TEXT NOT NULL,
    category    TEXT NOT NULL,
    action      TEXT NOT NULL,
    author_id   TEXT,
    author_name TEXT,
    source      TEXT,
    method      TEXT,
    node        TEXT,
    system      TEXT,
    uid         TEXT,
    doc         BLOB NOT NULL
);
-- Every index ends in the rowid, so each serves (…, ts, id) keyset order.
CREATE INDEX events_by_time ON events (ts);
CREATE INDEX events_by_action ON events (action, ts);
CREATE INDEX events_by_category ON events (category, ts);
CREATE INDEX events_by_author ON events (author_id, ts);

-- Every affected object of every event (Atlassian indexes only the first five). One B-tree,
-- keyed for "events about this object, newest first".
CREATE TABLE event_objects (
    type      TEXT NOT NULL,               -- upper-cased
    object_id TEXT NOT NULL,               -- '' when the object has no id
    ts        INTEGER NOT NULL,
    event_id  INTEGER NOT NULL,
    pos       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (type, object_id, ts, event_id, pos)
) WITHOUT ROWID;

-- Client idempotency keys: same uid + same fingerprint = same event.
CREATE TABLE event_uids (
    uid         TEXT PRIMARY KEY,
    event_id    INTEGER NOT NULL,
    fingerprint BLOB NOT NULL
) WITHOUT ROWID;

-- Full-text index; contentless, the text is rebuilt from the event when one is deleted.
CREATE VIRTUAL TABLE events_fts USING fts5(body, content='', columnsize=0,
                                            tokenize='unicode61 remove_diacritics 2');
-- Merge index segments in runs of 8 rather than 4: half the rewriting on every insert, for a
-- few more segments to read per search (stored in the index's own config table).
INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 8);

-- Catalogues for pickers, lookups and the CLI's class list.
CREATE TABLE catalogue_actions (
    action       TEXT NOT NULL,
    category     TEXT NOT NULL,
    action_key   TEXT,
    category_key TEXT,
    area         TEXT NOT NULL,
    PRIMARY KEY (action, category)
) WITHOUT ROWID;

CREATE TABLE catalogue_authors (
    author_id TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    type      TEXT NOT NULL,
    uri       TEXT,
    last_seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX catalogue_authors_by_name ON catalogue_authors (name COLLATE NOCASE);

CREATE TABLE catalogue_objects (
    type      TEXT NOT NULL,
    object_id TEXT NOT NULL,               -- '' when the object has no id
    name      TEXT NOT NULL,
    uri       TEXT,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (type, object_id, name)
) WITHOUT ROWID;
CREATE INDEX catalogue_objects_by_name ON catalogue_objects (name COLLATE NOCASE);

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The verifiable log (issue 7): see the SQLite migration of the same number for the layout.
CREATE TABLE merkle_leaves (
    tile     bigint PRIMARY KEY,
    first_id bigint NOT NULL,
    last_id  bigint NOT NULL,
    records  bytea NOT NULL
);
CREATE UNIQUE INDEX merkle_leaves_by_last_id ON merkle_leaves (last_id);

CREATE TABLE merkle_nodes (
    level  integer NOT NULL,
    tile   bigint NOT NULL,
    hashes bytea NOT NULL,
    PRIMARY KEY (level, tile)
);

CREATE TABLE checkpoints (
    size          bigint PRIMARY KEY,
    root          bytea NOT NULL,
    last_id       bigint NOT NULL,
    created_ms    bigint NOT NULL,
    origin        text NOT NULL,
    note          text NOT NULL,
    compact_range bytea NOT NULL
);

CREATE TABLE signing_keys (
    vkey          text PRIMARY KEY,
    first_used_ms bigint NOT NULL
);

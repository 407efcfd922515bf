-- The verifiable log (issue 7): the Merkle tree over the events in id order, kept as tiles
-- (trailkeeper.integrity.tree), and the signed checkpoints of its root.
--
-- merkle_leaves: tile t holds the 49-byte leaf records of leaves 256t .. 256t+255, with the
-- ids of its first and last event (to find an event's leaf). Retention removes whole tiles
-- whose events are all gone; the hashes above them stay in merkle_nodes.
CREATE TABLE merkle_leaves (
    tile     INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id  INTEGER NOT NULL,
    records  BLOB NOT NULL
);
CREATE UNIQUE INDEX merkle_leaves_by_last_id ON merkle_leaves (last_id);

-- merkle_nodes: tile t of level k >= 1 holds up to 256 hashes (32 bytes each) of the
-- complete subtrees of 2^(8k) leaves numbered 256t .. 256t+255.
CREATE TABLE merkle_nodes (
    level  INTEGER NOT NULL,
    tile   INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, tile)
) WITHOUT ROWID;

-- A signed checkpoint of the tree of `size` leaves: `note` is the C2SP signed note,
-- `last_id` the event of leaf size-1, `compact_range` the hashes (32 bytes each, largest
-- subtree first) from which the root folds, for verifying files that start after it.
CREATE TABLE checkpoints (
    size          INTEGER PRIMARY KEY,
    root          BLOB NOT NULL,
    last_id       INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    origin        TEXT NOT NULL,
    note          TEXT NOT NULL,
    compact_range BLOB NOT NULL
);

-- The public keys that signed checkpoints here (C2SP verifier key strings). A verifier
-- should trust its own copy of the key; these are for convenience and for cluster nodes.
CREATE TABLE signing_keys (
    vkey          TEXT PRIMARY KEY,
    first_used_ms INTEGER NOT NULL
);

-- The Merkle leaf digest of each event (issue 7): SHA-256 of its canonical bytes
-- (trailkeeper.integrity.canonical), computed by the writer from what it encoded and stored
-- with the row, so that the tree's builder need not read the document back and re-encode
-- it. NULL where the writer did not compute it (rows older than this column, writers with
-- integrity off): the builder derives those from the document, as the verifier always does.
ALTER TABLE events ADD COLUMN leaf_digest BLOB;

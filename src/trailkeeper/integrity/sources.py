"""Where a verifier reads a log with its tree: a store directly, or a server over HTTP.

Both give the same things — the builder's position, the checkpoints, the tiles, the events in
id order with the leaf record recomputed from each one as it is now, and the retention runs'
records — so `trailkeeper.integrity.verify` checks either the same way. Nothing a source says
is trusted: every claim is checked against the events and against signatures.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson

from trailkeeper.errors import TrailkeeperError
from trailkeeper.governance.retention import ACTION as RETENTION_ACTION
from trailkeeper.integrity.canonical import (
    CanonicalError,
    canonical_from_line,
    leaf_record,
    stored_record,
)
from trailkeeper.integrity.proofs import tree_size
from trailkeeper.integrity.tree import Tile
from trailkeeper.model.timestamps import parse_iso
from trailkeeper.query.ast import Compare
from trailkeeper.storage.base import Storage
from trailkeeper.storage.merkle import CheckpointRecord

if TYPE_CHECKING:  # a verifier of a store or of files need not load the HTTP client
    import httpx

_EVENTS_PER_READ = 5_000
_TILES_PER_READ = 64


class Row(NamedTuple):
    """An event as the source holds it now, with its leaf record recomputed (a tuple: one
    is made per event verified, and a frozen dataclass costs several times more)."""

    id: int
    row_ts: int  # the indexed time (the document's own is inside the record)
    record: bytes
    payload: Any  # what `Source.rehash` needs to recompute the record under another id


@dataclass(frozen=True, slots=True)
class RetentionClaim:
    """What a recorded retention run says it removed."""

    event_id: int  # the run's own event
    deleted_up_to_ms: int | None
    merkle_kept_from_id: int | None


class Source(Protocol):
    name: str

    def position(self) -> tuple[int, int]:
        """(leaves in the tree, id of the last event hashed)."""
        ...

    def checkpoints(self) -> list[CheckpointRecord]: ...

    def tiles(self, level: int, first: int, last: int) -> list[Tile]: ...

    def first_leaf_tile(self) -> int | None: ...

    def rows(self, after_id: int, up_to_id: int | None) -> Iterator[Row]:
        """Events with ids in (after_id, up_to_id], in id order."""
        ...

    def rehash(self, row: Row, event_id: int) -> bytes:
        """The record ``row``'s content would have under another id (to spot swaps)."""
        ...

    def retention_claims(self) -> list[RetentionClaim]: ...

    def keys(self) -> list[str]:
        """The verifier keys the source says signed its checkpoints (not trusted as such)."""
        ...


def claim_of(event_id: int, attributes: list[Any]) -> RetentionClaim:
    values = {a.get("name"): a.get("value") for a in attributes if isinstance(a, dict)}

    def number(text: Any, parse: Any) -> int | None:
        try:
            return int(parse(text)) if isinstance(text, str) else None
        except (ValueError, TypeError):
            return None

    return RetentionClaim(event_id, number(values.get("Deleted events up to"), parse_iso),
                          number(values.get("Merkle leaves kept from event ID"), int))


class StoreSource:
    """A store opened directly (``trailkeeper verify --db``)."""

    def __init__(self, storage: Storage, name: str) -> None:
        self.storage = storage
        self.name = name

    def position(self) -> tuple[int, int]:
        return tree_size(self.storage)

    def checkpoints(self) -> list[CheckpointRecord]:
        found: list[CheckpointRecord] = []
        while True:
            page = self.storage.checkpoints(after_size=found[-1].size if found else -1)
            found += page
            if len(page) < 1000:
                return found

    def tiles(self, level: int, first: int, last: int) -> list[Tile]:
        return self.storage.merkle_tiles(level, first, last)

    def first_leaf_tile(self) -> int | None:
        return self.storage.merkle_first_leaf_tile()

    def rows(self, after_id: int, up_to_id: int | None) -> Iterator[Row]:
        last = after_id
        while True:
            batch = self.storage.events_after(last, _EVENTS_PER_READ)
            for e in batch:
                if up_to_id is not None and e.id > up_to_id:
                    return
                yield Row(e.id, e.timestamp_ms, stored_record(e.id, e.timestamp_ms, e.doc),
                          e.doc)
            if len(batch) < _EVENTS_PER_READ:
                return
            last = batch[-1].id

    def rehash(self, row: Row, event_id: int) -> bytes:
        return stored_record(event_id, row.row_ts, row.payload)

    def retention_claims(self) -> list[RetentionClaim]:
        runs = self.storage.stream(Compare("action", "=", RETENTION_ACTION), descending=False)
        return [claim_of(e.id, orjson.loads(e.doc).get("extraAttributes") or []) for e in runs]

    def keys(self) -> list[str]:
        return self.storage.signing_keys()


class ServerSource:
    """A server's API (``trailkeeper verify -H``): the read endpoints an auditor may use."""

    def __init__(self, client: httpx.Client, name: str) -> None:
        self.client = client
        self.name = name

    def _get(self, path: str, **params: Any) -> httpx.Response:
        answer = self.client.get(path, params=params)
        if answer.status_code >= 400:
            raise TrailkeeperError(f"{self.name}{path}: HTTP {answer.status_code}: "
                                   f"{answer.text[:300]}")
        return answer

    def position(self) -> tuple[int, int]:
        state = self._get("/api/v1/integrity").json()
        return int(state["tree_size"]), int(state["last_event_id"])

    def checkpoints(self) -> list[CheckpointRecord]:
        found: list[CheckpointRecord] = []
        while True:
            page = self._get("/api/v1/checkpoints", limit=1000,
                             **({"after": found[-1].size} if found else {})).json()
            found += [_checkpoint(c) for c in page["checkpoints"]]
            if len(page["checkpoints"]) < 1000:
                return found

    def tiles(self, level: int, first: int, last: int) -> list[Tile]:
        out = []
        for start in range(first, last + 1, _TILES_PER_READ):
            page = self._get(f"/api/v1/integrity/tiles/{level}", first=start,
                             count=min(_TILES_PER_READ, last + 1 - start)).json()
            out += [Tile(level, int(t["index"]), base64.b64decode(t["data"]))
                    for t in page["tiles"]]
        return out

    def first_leaf_tile(self) -> int | None:
        value = self._get("/api/v1/integrity").json()["first_leaf_tile"]
        return None if value is None else int(value)

    def rows(self, after_id: int, up_to_id: int | None) -> Iterator[Row]:
        query = f"id:[{after_id + 1} TO {up_to_id if up_to_id is not None else '*'}]"
        with self.client.stream("GET", "/api/v1/events", params={
                "q": query, "sort": "id", "format": "ndjson"}) as answer:
            if answer.status_code >= 400:
                answer.read()
                raise TrailkeeperError(f"{self.name}/api/v1/events: HTTP "
                                       f"{answer.status_code}: {answer.text[:300]}")
            for raw in answer.iter_lines():
                if not raw:
                    continue
                line = orjson.loads(raw)
                try:
                    event_id, ts, canonical = canonical_from_line(line)
                except CanonicalError:
                    event_id, ts, canonical = int(line.get("id", 0)), 0, raw.encode()
                yield Row(event_id, ts, leaf_record(event_id, ts, canonical), line)

    def rehash(self, row: Row, event_id: int) -> bytes:
        try:
            _, ts, canonical = canonical_from_line({**row.payload, "id": event_id})
        except CanonicalError:
            return b""
        return leaf_record(event_id, ts, canonical)

    def retention_claims(self) -> list[RetentionClaim]:
        answer = self._get("/api/v1/events", q=f'action:"{RETENTION_ACTION}"', sort="id",
                           format="ndjson")
        lines = [orjson.loads(raw) for raw in answer.content.split(b"\n") if raw]
        return [claim_of(int(line["id"]), line.get("extraAttributes") or []) for line in lines]

    def keys(self) -> list[str]:
        return [str(k) for k in self._get("/api/v1/integrity").json()["keys"]]


def _checkpoint(c: dict[str, Any]) -> CheckpointRecord:
    return CheckpointRecord(
        size=int(c["size"]), root=base64.b64decode(c["root"]), last_id=int(c["last_event_id"]),
        created_ms=int(c["created_ms"]), origin=str(c["origin"]), note=str(c["note"]),
        compact_range=tuple(base64.b64decode(h) for h in c["compact_range"]))

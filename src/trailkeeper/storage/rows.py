"""How an event becomes rows: shared by both backends so they store exactly the same thing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from trailkeeper.errors import ConflictError
from trailkeeper.model.document import CanonicalDigest, rest_document, rest_document_and_digest
from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.model.timestamps import format_iso, ms_and_iso
from trailkeeper.storage.base import AppendResult, NewEvent

T = TypeVar("T")


def encode(event: AuditEvent, received_ms: int, default_author: AuditAuthor, *,
           canonical: bool = False) -> NewEvent:
    """Everything the store needs, computed outside the writer's lock; with ``canonical``,
    the canonical bytes hashed as far as the id (the store finishes the leaf digest).

    The fingerprint covers what the producer sent (before defaults), so a retry of an event
    without a timestamp still matches the stored one.
    """
    author = default_author if event.author is None else event.author
    if event.timestamp is None:
        timestamp_ms, timestamp = received_ms, format_iso(received_ms)
    else:
        timestamp_ms, timestamp = ms_and_iso(event.timestamp)
    digest: CanonicalDigest | None = None
    if canonical:
        doc, digest = rest_document_and_digest(event, timestamp, timestamp_ms, author)
    else:
        doc = rest_document(event, timestamp, author)
    fingerprint = None
    if event.uid is not None:
        # What the producer sent, without defaults. Documents order keys and items
        # deterministically: equal events, equal bytes.
        as_sent = doc if event.timestamp is not None and event.author is not None else \
            rest_document(event, None if event.timestamp is None else timestamp, event.author)
        fingerprint = hashlib.sha256(as_sent).digest()
    return NewEvent(event, timestamp_ms, author, fingerprint, doc, search_text(event, author),
                    digest)


def search_text(event: AuditEvent, author: AuditAuthor | None = None) -> str:
    """The text the full-text index holds for an event.

    It must stay a pure function of the stored event: SQLite's contentless index can only
    forget an event when given the same text again (retention depends on it).
    """
    t = event.type
    parts = [t.action, t.category]
    author = author or event.author
    if author is not None:
        parts.append(author.name)
    for value in (event.source, event.method, event.node):
        if value:
            parts.append(value)
    for obj in event.affected_objects:
        parts.append(obj.name)
    for change in event.changed_values:
        parts.append(change.key)
        if change.from_value:
            parts.append(change.from_value)
        if change.to_value:
            parts.append(change.to_value)
    for attribute in event.extra_attributes:
        parts.append(attribute.name)
        parts.append(attribute.value)
    return "\n".join(parts)


def object_keys(event: AuditEvent) -> list[tuple[int, tuple[str, str, str]]]:
    """(position, (TYPE, id or '', name)) of the objects to index, one per typed id.

    An object listed twice with the same type and id is indexed once, so a search driven
    by that object's index yields each event once.
    """
    seen: set[tuple[str, str]] = set()
    keys = []
    for pos, o in enumerate(event.affected_objects):
        kind = o.type.upper()
        if o.id:
            if (kind, o.id) in seen:
                continue
            seen.add((kind, o.id))
        keys.append((pos, (kind, o.id or "", o.name)))
    return keys


@dataclass
class Catalogue:
    """What one group commit adds to the catalogues (actions, categories, authors, objects)."""

    actions: dict[tuple[str, str], tuple[str | None, str | None, str]] = field(default_factory=dict)
    authors: dict[str, tuple[str, str, str | None, int]] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], tuple[str | None, int]] = field(default_factory=dict)

    def add(self, events: Iterable[NewEvent]) -> None:
        for new in events:
            e, ts, a = new.event, new.timestamp_ms, new.author
            t = e.type
            self.actions[(t.action, t.category)] = (t.action_i18n_key, t.category_i18n_key,
                                                    t.area)
            seen = self.authors.get(a.id)
            if seen is None or seen[3] <= ts:
                self.authors[a.id] = (a.name, a.type, a.uri, ts)
            for o in e.affected_objects:
                key = (o.type, o.id or "", o.name)
                seen_object = self.objects.get(key)
                if seen_object is None or seen_object[1] <= ts:
                    self.objects[key] = (o.uri, ts)

    def merge(self, other: Catalogue) -> None:
        """Add another batch's entries (the newest sighting of each wins)."""
        self.actions.update(other.actions)
        for aid, seen in other.authors.items():
            mine = self.authors.get(aid)
            if mine is None or mine[3] <= seen[3]:
                self.authors[aid] = seen
        for key, sighting in other.objects.items():
            known = self.objects.get(key)
            if known is None or known[1] <= sighting[1]:
                self.objects[key] = sighting


@dataclass
class BatchPlan:
    """Which events of a batch to insert, given the uids already stored.

    ``fresh``: positions to insert, in order. ``known``: position -> id of the stored event
    with the same uid and content. ``same_as``: position -> earlier position of this batch
    that carries the same uid and content (sent twice in one batch).
    """

    fresh: list[int] = field(default_factory=list)
    known: dict[int, int] = field(default_factory=dict)
    same_as: dict[int, int] = field(default_factory=dict)
    rejected: list[ConflictError] = field(default_factory=list)

    def ids(self, first_id: int, size: int) -> list[int]:
        """Ids of the whole batch in input order when the fresh events get first_id, +1, ...
        (0 for a rejected event)."""
        if len(self.fresh) == size:  # every event is new
            return list(range(first_id, first_id + size))
        assigned = {pos: first_id + n for n, pos in enumerate(self.fresh)}
        assigned.update(self.known)
        return [assigned.get(self.same_as.get(pos, pos), 0) for pos in range(size)]


def plan_batch(batch: Sequence[NewEvent], stored: Mapping[str, tuple[int, bytes]], *,
               lenient: bool = False) -> BatchPlan:
    """Resolve uids against the store.

    A uid reused for other content is a `ConflictError` for the whole batch, or with
    ``lenient`` only for that event, which is left out and listed in ``rejected``.
    """
    plan = BatchPlan()
    if all(new.event.uid is None for new in batch):  # as in-process events mostly are
        plan.fresh = list(range(len(batch)))
        return plan
    first_seen: dict[str, int] = {}
    for pos, new in enumerate(batch):
        uid = new.event.uid
        if uid is None:
            plan.fresh.append(pos)
            continue
        conflict = None
        earlier = first_seen.get(uid)
        existing = stored.get(uid)
        if earlier is not None:
            if batch[earlier].fingerprint == new.fingerprint:
                plan.same_as[pos] = earlier
                continue
            conflict = ConflictError(
                f"uid {uid!r} appears twice in this batch with different content",
                uid=uid, index=pos)
        elif existing is None:
            first_seen[uid] = pos
            plan.fresh.append(pos)
            continue
        elif existing[1] == new.fingerprint:
            first_seen[uid] = pos
            plan.known[pos] = existing[0]
            continue
        else:
            conflict = ConflictError(
                f"uid {uid!r} is already stored (event {existing[0]}) with different content",
                uid=uid, index=pos)
        if not lenient:
            raise conflict
        plan.rejected.append(conflict)
    return plan


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch ready for `Storage.append`: encoded events, their catalogue entries, and
    whatever rows the backend prepared for them (`Storage.prepare`), all computed in the
    producer's thread so the writer's critical section only executes SQL."""

    events: Sequence[NewEvent]
    catalogue: Catalogue
    rows: Any = None
    lenient: bool = False  # a uid conflict rejects only that event (in-process batches)
    # Events of the producer's batch that the audit policy did not record: (position in
    # the producer's batch, reason). ``events`` holds the others, in order.
    skipped: tuple[tuple[int, str], ...] = ()

    @classmethod
    def of(cls, events: Sequence[NewEvent], rows: Any = None, *, lenient: bool = False,
           skipped: tuple[tuple[int, str], ...] = ()) -> Batch:
        catalogue = Catalogue()
        catalogue.add(events)
        return cls(events, catalogue, rows, lenient, skipped)

    def producer_ids(self, ids: Sequence[int]) -> list[int | None]:
        """The ids of the producer's whole batch, None where the policy recorded nothing."""
        if not self.skipped:
            return list(ids)
        left_out = {pos for pos, _ in self.skipped}
        stored = iter(ids)
        return [None if pos in left_out else next(stored)
                for pos in range(len(ids) + len(left_out))]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A batch that will be stored: its plan, and the id of its first fresh event."""

    batch: Batch
    plan: BatchPlan
    first_id: int

    @property
    def complete(self) -> bool:
        """Every event of the batch is fresh, so its prepared rows can be used as they are."""
        return len(self.plan.fresh) == len(self.batch.events)

    def fresh(self) -> list[NewEvent]:
        return [self.batch.events[pos] for pos in self.plan.fresh]


def plan_group(
    batches: Sequence[Batch], stored: dict[str, tuple[int, bytes]], first_id: int
) -> tuple[list[AppendResult | ConflictError], list[Accepted]]:
    """Resolve the uids of a group commit, batch after batch: a batch sees the uids of the
    batches before it (``stored`` gains them); fresh events get ids from ``first_id`` on."""
    results: list[AppendResult | ConflictError] = []
    accepted: list[Accepted] = []
    next_id = first_id
    for batch in batches:
        try:
            plan = plan_batch(batch.events, stored, lenient=batch.lenient)
        except ConflictError as conflict:
            results.append(conflict)
            continue
        for event_id, pos in enumerate(plan.fresh, start=next_id):
            new = batch.events[pos]
            if new.event.uid is not None and new.fingerprint is not None:
                stored[new.event.uid] = (event_id, new.fingerprint)
        results.append(AppendResult(plan.ids(next_id, len(batch.events)), len(plan.fresh),
                                    plan.rejected))
        accepted.append(Accepted(batch, plan, next_id))
        next_id += len(plan.fresh)
    return results, accepted


def uids_of(batches: Sequence[Batch]) -> list[str]:
    return list({new.event.uid for batch in batches for new in batch.events
                 if new.event.uid is not None})


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

"""The work done on each piece: parse, hash, take numbers from the coordinator, store.

A piece is handled in two steps because uids depend on what came before it in the same
source (the occurrence counter) and line numbers on how many lines the earlier pieces had:

1. `Processor.parse` reads and parses the piece, and returns the content `Digests`;
2. the coordinator, seeing every piece of a source in order, answers with a `Numbering`
   (the piece's first line number and which digests are repeats);
3. `Processor.store` assigns the uids, stores through the sink and returns a `PieceResult`.

The same code runs in worker processes (see `pool`) and inline in the importing process.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from trailkeeper.model.event import AuditEvent
from trailkeeper.model.wire import decode_event
from trailkeeper.transfer.identity import assign_uid, content, imported_uid
from trailkeeper.transfer.readers import Parsed, Work, parse
from trailkeeper.transfer.sinks import Sink


@dataclass(frozen=True, slots=True)
class Digests:
    """What the coordinator needs from a parsed piece."""

    source: int
    seq: int
    last: bool
    newlines: int
    digests: bytes  # one per event without its own uid, in order


@dataclass(frozen=True, slots=True)
class Numbering:
    source: int
    seq: int
    first_line: int
    repeats: dict[int, int]  # digest position -> occurrence number, where above 0


@dataclass(slots=True)
class PieceResult:
    source: int
    seq: int
    size: int  # bytes of the source this piece covered
    records: int = 0
    stored: int = 0
    present: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)


@dataclass(slots=True)
class _Pending:
    work: Work
    parsed: Parsed
    documents: list[bytes | None]
    digests: list[bytes]


class Processor:
    """Parses and stores pieces through one sink, one piece at a time."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._decode = decode_event
        self._pending: _Pending | None = None

    def parse(self, work: Work) -> Digests:
        try:
            parsed = parse(work, self._decode)
        except OSError as exc:
            parsed = Parsed(bad=[(0, f"cannot read bytes {work.start}-{work.end}: {exc}")])
        documents: list[bytes | None] = []
        digests: list[bytes] = []
        for event in parsed.events:
            if event.uid is None:
                document, content_digest = content(event)
                documents.append(document)
                digests.append(content_digest)
            else:
                documents.append(None)
        self._pending = _Pending(work, parsed, documents, digests)
        return Digests(work.source, work.seq, work.last, parsed.newlines, b"".join(digests))

    def store(self, numbering: Numbering, stop: threading.Event | None = None) -> PieceResult:
        """Assign uids and store the parsed piece.

        If the sink fails (or raises `sinks.Interrupted`), the piece stays pending and the
        call may be repeated: the uids come out the same.
        """
        pending = self._pending
        assert pending is not None
        assert pending.work.seq == numbering.seq
        parsed, first = pending.parsed, numbering.first_line
        _assign_uids(parsed.events, pending.documents, pending.digests, numbering.repeats)
        source = pending.work.source
        outcome = self.sink.store(parsed.events, pending.documents,
                                  [(source, first + line) for line in parsed.lines], stop)
        self._pending = None
        bad = [(first + line, message) for line, message in parsed.bad]
        bad += [(line, message) for (_, line), message in outcome.refused]
        bad.sort(key=lambda item: item[0])
        return PieceResult(source, numbering.seq, pending.work.size, parsed.records,
                           outcome.stored, outcome.present, bad)


def _assign_uids(events: list[AuditEvent], documents: list[bytes | None], digests: list[bytes],
                 repeats: dict[int, int]) -> None:
    position = 0
    for event, document in zip(events, documents, strict=True):
        if document is not None:
            assign_uid(event, imported_uid(event, digests[position],
                                           repeats.get(position, 0)))
            position += 1


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Automatic garbage collection off while importing.

    Parsing makes millions of short-lived objects that reference counting frees; the
    collector's passes over them cost a third of the parsing time. Callers let `Collector`
    run a pass now and then, for the rare reference cycle.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Collector:
    """Collects the young generations every ``every`` pieces: often enough to bound what
    cycles could hold, rarely enough to cost nothing measurable."""

    def __init__(self, every: int = 32) -> None:
        self._every = every
        self._pieces = 0

    def piece_done(self) -> None:
        self._pieces += 1
        if self._pieces % self._every == 0:
            gc.collect(1)

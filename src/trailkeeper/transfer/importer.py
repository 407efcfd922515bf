"""`Importer`: audit files into a store or a server, each event once, with a summary.

    summary = Importer(StoreTarget("sqlite:///audit.db"), on_problem=print).run([Path("audit/")])

Files are read in the order given (a directory's files in name order, which is chronological
for Atlassian's ``YYYYMMDD.NNNNN.audit.log``). Every bad record is reported as a `Problem`
with its file and line, and the good records around it are stored. Importing the same events
again stores nothing: they get the same uids (`identity`), and the store recognises them.
Large imports into a store are parsed by worker processes (`pool`), small ones inline.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trailkeeper.transfer import pool
from trailkeeper.transfer.formats import Format, Source, UnknownFormatError, detect
from trailkeeper.transfer.identity import Occurrences
from trailkeeper.transfer.processor import (
    Collector,
    Digests,
    Numbering,
    PieceResult,
    Processor,
    collection_paused,
)
from trailkeeper.transfer.readers import CHUNK_BYTES, Work, pieces
from trailkeeper.transfer.sinks import StoreTarget, Target

_INLINE_BELOW_BYTES = 16 * 1024 * 1024  # starting workers costs more than parsing this much
_MAX_WORKERS = 4  # past this, the workers wait for the store's writer lock


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad record (with its line) or an unreadable file (without)."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.message}"


@dataclass
class Summary:
    """What an import did. ``bad`` counts bad records, ``skipped_files`` files that could not
    be read (or not to their end); ``present`` is None when the target does not say."""

    target: str
    files: int = 0
    records: int = 0
    stored: int = 0
    present: int | None = 0
    bad: int = 0
    skipped_files: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether every record of every file was read and stored."""
        return not self.bad and not self.skipped_files

    @property
    def events_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target, "files": self.files, "records": self.records,
            "stored": self.stored, "already_present": self.present, "bad": self.bad,
            "skipped_files": self.skipped_files, "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(self.events_per_s),
        }

    def text(self) -> str:
        present = "unknown (the server does not say)" if self.present is None \
            else f"{self.present:,}"
        skipped = f" ({self.skipped_files:,} skipped)" if self.skipped_files else ""
        return (f"{self.files:,} file{'s' if self.files != 1 else ''}{skipped}, "
                f"{self.records:,} records: {self.stored:,} stored, {present} already "
                f"present, {self.bad:,} bad ({self.elapsed_s:.1f} s, "
                f"{self.events_per_s:,.0f} records/s)")


ProblemHandler = Callable[[Problem], None]
ProgressHandler = Callable[[Summary], None]


def _ignore(_: Any) -> None:
    pass


class Ledger:
    """The coordinator's books: line numbers and occurrence counters of each source, taken
    in order, and the summary, updated (and problems reported) in input order."""

    def __init__(self, sources: Sequence[Source], summary: Summary, *,
                 on_problem: ProblemHandler = _ignore,
                 on_progress: ProgressHandler = _ignore) -> None:
        self._names = [source.name for source in sources]
        self._summary = summary
        self._on_problem = on_problem
        self._on_progress = on_progress
        self._next_line = [1] * len(sources)
        self._occurrences: dict[int, Occurrences] = {}
        self._order: collections.deque[tuple[int, int]] = collections.deque()
        self._done: dict[tuple[int, int], PieceResult] = {}

    def problem(self, problem: Problem) -> None:
        """Report a problem: a bad record (with a line) or a file not read (without)."""
        if problem.line is None:
            self._summary.skipped_files += 1
        else:
            self._summary.bad += 1
        self._on_problem(problem)

    def dispatched(self, work: Work) -> None:
        self._order.append((work.source, work.seq))

    def number(self, digests: Digests) -> Numbering:
        """The numbering of a source's next piece (call in order for each source)."""
        source = digests.source
        occurrences = self._occurrences.setdefault(source, Occurrences())
        repeats = occurrences.repeats(digests.digests)
        if digests.last:
            del self._occurrences[source]  # its counters are not needed any more
        first = self._next_line[source]
        self._next_line[source] += digests.newlines
        return Numbering(source, digests.seq, first, repeats)

    def settle(self, result: PieceResult) -> None:
        self._done[(result.source, result.seq)] = result
        summary = self._summary
        while self._order and self._order[0] in self._done:
            done = self._done.pop(self._order.popleft())
            summary.records += done.records
            summary.stored += done.stored
            if summary.present is not None:
                summary.present += done.present
            summary.bytes_done += done.size
            for line, message in done.bad:
                self.problem(Problem(self._names[done.source], line, message))
        self._on_progress(summary)


def collect_sources(paths: Sequence[Path]) -> tuple[list[Source], list[Problem]]:
    """The files to read, in order: directories contribute their files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted((p for p in path.iterdir()
                             if p.is_file() and not p.name.startswith(".")),
                            key=lambda p: p.name)
        else:
            files.append(path)
    sources: list[Source] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for file in files:
        real = file.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            sources.append(detect(file))
        except UnknownFormatError as exc:
            problems.append(Problem(str(file), None, f"skipped: {exc}"))
        except OSError as exc:
            problems.append(Problem(str(file), None, f"skipped: cannot read it: "
                                                     f"{exc.strerror or exc}"))
    return sources, problems


class Importer:
    """Imports files into one target; ``workers``: processes to parse with (None: as many
    as help, 0: parse in this process)."""

    def __init__(self, target: Target, *, workers: int | None = None,
                 chunk_bytes: int = CHUNK_BYTES, on_problem: ProblemHandler = _ignore,
                 on_progress: ProgressHandler = _ignore) -> None:
        self.target = target
        self.summary = Summary(str(target))  # the current run's, also when it is interrupted
        self._workers = workers
        self._chunk_bytes = chunk_bytes
        self._on_problem = on_problem
        self._on_progress = on_progress

    def run(self, paths: Sequence[Path]) -> Summary:
        started = time.monotonic()
        sources, problems = collect_sources(paths)
        self.summary = summary = Summary(str(self.target), files=len(sources) + len(problems),
                                         bytes_total=sum(s.length for s in sources))
        if not self.target.reports_present:
            summary.present = None
        ledger = Ledger(sources, summary, on_problem=self._on_problem,
                        on_progress=self._on_progress)
        for problem in problems:
            ledger.problem(problem)
        try:
            self.target.prepare()
            works = self._works(sources, ledger)
            workers = self._worker_count(sources)
            with collection_paused():
                if workers and isinstance(self.target, StoreTarget):
                    pool.run(works, self.target, ledger, workers)
                else:
                    self._run_inline(works, ledger)
        finally:
            summary.elapsed_s = time.monotonic() - started
        return summary

    def _works(self, sources: Sequence[Source], ledger: Ledger) -> Iterator[Work]:
        for index, source in enumerate(sources):
            try:
                yield from pieces(source, index, self._chunk_bytes)
            except OSError as exc:
                ledger.problem(Problem(source.name, None,
                                       f"cannot read it: {exc.strerror or exc}"))

    def _worker_count(self, sources: Sequence[Source]) -> int:
        if self._workers is not None:
            return self._workers
        cores = os.cpu_count() or 1
        lines = sum(s.length for s in sources if s.format is Format.LINES)
        if not isinstance(self.target, StoreTarget) or cores < 2 \
                or lines < _INLINE_BELOW_BYTES:
            return 0
        return min(cores, _MAX_WORKERS)

    def _run_inline(self, works: Iterator[Work], ledger: Ledger) -> None:
        sink = self.target.open()
        try:
            processor = Processor(sink)
            collector = Collector()
            for work in works:
                ledger.dispatched(work)
                numbering = ledger.number(processor.parse(work))
                ledger.settle(processor.store(numbering))
                collector.piece_done()
        finally:
            sink.close()


__all__ = ["Importer", "Problem", "Summary", "collect_sources"]

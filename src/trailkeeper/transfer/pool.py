"""Importing with worker processes: each parses pieces and writes them to the store itself.

Why processes: parsing and validating an event costs about 30 µs of Python and storing it
about 18 µs, and one interpreter runs one of them at a time. Shipping parsed events between
processes costs more than parsing them (pickling a dataclass tree), so only file ranges and
bytes travel to the workers, and each worker opens its own store; SQLite's writer lock (and
PostgreSQL's append lock) takes the workers' commits in turn, while the others parse.

The coordinator (the calling process) hands out pieces in order, numbers them in order per
source (`Ledger.number`) and collects results. Queues, not pipes: a `multiprocessing.Queue`
put never blocks its caller, so the two sides cannot wait on each other's full pipe.
"""

from __future__ import annotations

import collections
import multiprocessing
import queue
import signal
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from trailkeeper.errors import StorageError, TrailkeeperError
from trailkeeper.transfer.processor import (
    Collector,
    Digests,
    Numbering,
    PieceResult,
    Processor,
    collection_paused,
)
from trailkeeper.transfer.readers import Work
from trailkeeper.transfer.sinks import StoreTarget

if TYPE_CHECKING:
    from trailkeeper.transfer.importer import Ledger

_PIECES_PER_WORKER = 2  # one being worked on, one waiting, so a worker never idles
_POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class _Failure:
    worker: int
    message: str
    exit_code: int


def run(works: Iterator[Work], target: StoreTarget, ledger: Ledger, workers: int) -> None:
    """Import every piece with ``workers`` processes; raises if a worker fails."""
    # spawn, not fork: the caller may have threads (a progress bar, a test's server), and a
    # forked child could inherit one of their locks held.
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[Any] = context.Queue()
    inboxes: list[multiprocessing.Queue[Any]] = [context.Queue() for _ in range(workers)]
    processes = [context.Process(target=_serve, args=(n, target, inbox, results),
                                 name=f"trailkeeper-import-{n}", daemon=True)
                 for n, inbox in enumerate(inboxes)]
    for process in processes:
        process.start()
    try:
        _coordinate(works, ledger, inboxes, results, processes)
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for process in processes:
            process.join(10)
            if process.is_alive():  # stuck or interrupted mid-piece; its batch rolls back
                process.terminate()
                process.join()
        for q in (*inboxes, results):
            q.close()
            q.cancel_join_thread()


def _coordinate(works: Iterator[Work], ledger: Ledger,
                inboxes: list[multiprocessing.Queue[Any]],
                results: multiprocessing.Queue[Any], processes: Sequence[BaseProcess]) -> None:
    load = [0] * len(inboxes)
    holder: dict[tuple[int, int], int] = {}  # piece -> the worker that has it
    early: dict[tuple[int, int], Digests] = {}  # digests that arrived before their turn
    next_seq: collections.Counter[int] = collections.Counter()
    exhausted = False
    while True:
        while not exhausted and min(load) < _PIECES_PER_WORKER:
            work = next(works, None)
            if work is None:
                exhausted = True
                break
            worker = load.index(min(load))
            holder[(work.source, work.seq)] = worker
            load[worker] += 1
            ledger.dispatched(work)
            inboxes[worker].put(work)
        if exhausted and not holder:
            return
        message = _receive(results, processes)
        if isinstance(message, Digests):
            early[(message.source, message.seq)] = message
            # Number each source's pieces in order, whichever worker finished first.
            while (key := (message.source, next_seq[message.source])) in early:
                inboxes[holder[key]].put(ledger.number(early.pop(key)))
                next_seq[message.source] += 1
        elif isinstance(message, PieceResult):
            load[holder.pop((message.source, message.seq))] -= 1
            ledger.settle(message)
        else:
            error = StorageError(f"an import worker failed: {message.message}")
            error.exit_code = message.exit_code
            raise error


def _receive(results: multiprocessing.Queue[Any], processes: Sequence[BaseProcess]) -> Any:
    while True:
        try:
            return results.get(timeout=_POLL_S)
        except queue.Empty:
            for process in processes:
                if process.exitcode is not None:
                    raise StorageError(f"import worker {process.name} exited unexpectedly "
                                       f"(exit code {process.exitcode})") from None


def _serve(number: int, target: StoreTarget, inbox: multiprocessing.Queue[Any],
           results: multiprocessing.Queue[Any]) -> None:
    """A worker: parse a piece, wait for its numbering, store it; until told to stop."""
    # Ctrl-C is the coordinator's to handle: it stops the workers and reports.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Told to stop, a worker has nothing left to say: it must not wait at exit for its
    # queue to drain into a coordinator that stopped reading (after an error or Ctrl-C).
    results.cancel_join_thread()
    try:
        sink = target.open()
    except Exception as exc:
        results.put(_failure(number, exc))
        return
    processor = Processor(sink)
    collector = Collector()
    backlog: collections.deque[Any] = collections.deque()
    try:
        with collection_paused():
            while (message := backlog.popleft() if backlog else inbox.get()) is not None:
                results.put(processor.parse(message))
                while not isinstance(reply := inbox.get(), Numbering):
                    if reply is None:
                        return
                    backlog.append(reply)  # a later piece, handed out while we parsed
                results.put(processor.store(reply))
                collector.piece_done()
    except Exception as exc:
        results.put(_failure(number, exc))
    finally:
        sink.close()


def _failure(number: int, exc: Exception) -> _Failure:
    if isinstance(exc, TrailkeeperError):
        return _Failure(number, exc.message, exc.exit_code)
    return _Failure(number, "".join(traceback.format_exception_only(exc)).strip(),
                    StorageError.exit_code)

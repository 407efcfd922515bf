"""Moving audit events in from files: ``trailkeeper import`` and ``trailkeeper tail``.

- `formats`: what a file holds (Atlassian log lines / NDJSON, JSON documents, CSV, gzip);
- `readers`: files cut into pieces, pieces parsed into events and per-line problems;
- `identity`: deterministic uids, so re-reading a file stores nothing twice;
- `sinks`: where events go (a store directly, or a server through `Client`);
- `processor`, `pool`, `importer`: importing, inline or with worker processes;
- `tail`, `position`: following a live Atlassian audit log directory.
"""

from trailkeeper.transfer.importer import Importer, Problem, Summary
from trailkeeper.transfer.readers import Record, read_records
from trailkeeper.transfer.sinks import ServerTarget, StoreTarget

__all__ = ["Importer", "Problem", "Record", "ServerTarget", "StoreTarget", "Summary",
           "read_records"]

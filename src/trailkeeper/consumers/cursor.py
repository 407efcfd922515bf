"""`LogCursor`: where one consumer stands in the committed log, kept in the store.

The state is a JSON object saved with `Storage.put_position` under the consumer's name
(table ``consumer_positions``): ``{"id": <last delivered id>, ...}`` plus whatever else the
consumer needs to resume (the file sink adds its file and byte offset). Ids grow in commit
order on both backends, so reading "ids above the last one" never skips an event that
commits later with a lower id.

A consumer saves only after its delivery is durable; after a crash it resumes from the last
save, so delivery is at-least-once — exactly-once where, like the file sink, it can undo
what it delivered after that save.
"""

from __future__ import annotations

from typing import Any

import orjson

from trailkeeper.errors import StateError
from trailkeeper.storage.base import Storage, StoredEvent


class LogCursor:
    """A consumer's durable position: the last delivered id and its own extra state."""

    def __init__(self, storage: Storage, name: str) -> None:
        self.storage = storage
        self.name = name
        self.last_id = 0
        self.state: dict[str, Any] = {"id": 0}

    def load(self) -> dict[str, Any]:
        """The saved state (``{"id": 0}`` before the first save), now also ours."""
        text = self.storage.get_position(self.name)
        state: Any = {"id": 0} if text is None else orjson.loads(text)
        if not isinstance(state, dict) or not isinstance(state.get("id"), int) \
                or state["id"] < 0:
            raise StateError(f"the saved position of {self.name!r} is not usable: {text!r}")
        self.state = state
        self.last_id = state["id"]
        return state

    def read(self, limit: int, *, after: int | None = None) -> list[StoredEvent]:
        """Up to ``limit`` committed events after the last delivered one (or after id
        ``after``, for a consumer that saves once per several reads), in id order."""
        return self.storage.events_after(self.last_id if after is None else after, limit)

    def save(self, last_id: int, **extra: Any) -> None:
        """Record delivery up to ``last_id`` (call once that delivery is durable)."""
        state = {"id": last_id, **extra}
        self.storage.put_position(self.name, orjson.dumps(state).decode())
        self.state = state
        self.last_id = last_id

    def lag(self) -> int:
        """Committed events not yet delivered."""
        return max(0, self.storage.max_id() - self.last_id)

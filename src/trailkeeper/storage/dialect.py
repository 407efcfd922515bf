"""One SQL text for both backends: statements are written with ``?`` placeholders and each
backend runs them through its `Dialect`; the table modules (alerts, integrity) get a `Run`,
the backend connection's ``execute(sql, params)`` returning the rows, inside the transaction
and the locks the backend holds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Run = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class Dialect:
    """Only the placeholder differs: ``?`` (sqlite3) or ``%s`` (psycopg)."""

    mark: str

    def sql(self, text: str) -> str:
        return text if self.mark == "?" else text.replace("?", self.mark)


SQLITE = Dialect("?")
POSTGRES = Dialect("%s")

"""Compile the query AST to a parameterised SQL condition for SQLite or PostgreSQL.

Pure: no connection, no clock. Values always travel as parameters; only column names from
the fixed table below and operators from the AST's closed set reach the SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trailkeeper.query.ast import And, Compare, HasObject, In, MatchAll, Node, Not, Or, Text

COLUMNS = {
    "id": "e.id",
    "timestamp": "e.ts",
    "area": "e.area",
    "level": "e.level",
    "category": "e.category",
    "action": "e.action",
    "author.id": "e.author_id",
    "author.name": "e.author_name",
    "source": "e.source",
    "method": "e.method",
    "node": "e.node",
    "system": "e.system",
    "uid": "e.uid",
}
_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_WORDY = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    placeholder: str

    def text_condition(self, terms: tuple[str, ...], match_all: bool, *,
                       as_filter: bool = False) -> tuple[str, str] | None:
        """(SQL, parameter) for a full-text match, or None when no term has a word in it.

        ``as_filter``: the matches are many, so keep the time-ordered scan and test each
        row against them rather than fetching every match and sorting (SQLite; PostgreSQL's
        planner makes that choice from its statistics).
        """
        words = [t for t in terms if _WORDY.search(t)]
        if not words:
            return None
        p = self.placeholder
        if self.name == "sqlite":
            # Each term is an FTS5 phrase matched as a prefix: "10.50.73.5"* or "admin"*.
            query = (" AND " if match_all else " OR ").join(
                '"' + w.replace('"', '""') + '"*' for w in words
            )
            column = "+e.id" if as_filter else "e.id"  # unary + stops rowid lookups
            return f"{column} IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {p})", query
        query = (" & " if match_all else " | ").join(
            "'" + w.replace("\\", "\\\\").replace("'", "''") + "':*" for w in words
        )
        return f"e.search @@ to_tsquery('simple', {p})", query


SQLITE = Dialect("sqlite", "?")
POSTGRES = Dialect("postgres", "%s")


class _Compiler:
    def __init__(self, dialect: Dialect, columns: dict[str, str], filter_text: bool) -> None:
        self.dialect = dialect
        self.columns = columns
        self.filter_text = filter_text
        self.params: list[object] = []

    def param(self, value: object) -> str:
        self.params.append(value)
        return self.dialect.placeholder

    def node(self, node: Node) -> str:
        if isinstance(node, MatchAll):
            return "1=1"
        if isinstance(node, Compare):
            if node.op not in _OPS:
                raise ValueError(f"unknown operator {node.op!r}")
            column = self.column(node.field)
            op = "<>" if node.op == "!=" else node.op
            return f"{column} {op} {self.param(node.value)}"
        if isinstance(node, In):
            column = self.column(node.field)
            if not node.values:
                return "1=0"
            if len(node.values) == 1:
                return f"{column} = {self.param(node.values[0])}"
            return f"{column} IN ({', '.join(self.param(v) for v in node.values)})"
        if isinstance(node, HasObject):
            sql = f"o.type = {self.param(node.type.upper())}"
            if len(node.ids) == 1:
                sql += f" AND o.object_id = {self.param(node.ids[0])}"
            elif node.ids:
                sql += f" AND o.object_id IN ({', '.join(self.param(i) for i in node.ids)})"
            return f"e.id IN (SELECT o.event_id FROM event_objects o WHERE {sql})"
        if isinstance(node, Text):
            compiled = self.dialect.text_condition(node.terms, node.match_all,
                                                   as_filter=self.filter_text)
            if compiled is None:
                return "1=1"
            sql, query = compiled
            self.params.append(query)
            return sql
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(n) for n in node.items) + ")" if node.items \
                else "1=1"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(n) for n in node.items) + ")" if node.items \
                else "1=0"
        if isinstance(node, Not):
            # NULL columns must count as "not matching", so NOT (source = x) keeps rows
            # without a source, as a search user expects.
            return f"NOT COALESCE(({self.node(node.item)}), FALSE)"
        raise TypeError(f"not a query node: {node!r}")


    def column(self, field: str) -> str:
        try:
            return self.columns[field]
        except KeyError:
            raise ValueError(f"unknown field {field!r}") from None


def compile_where(node: Node, dialect: Dialect, *, ts_column: str = "e.ts",
                  id_column: str = "e.id", filter_text: bool = False) -> tuple[str, list[object]]:
    """The SQL condition (over the ``events`` table aliased ``e``) and its parameters.

    ``ts_column``/``id_column`` let a plan that drives from another index with the same
    timestamps (``event_objects``) put time bounds on that index.
    """
    columns = {**COLUMNS, "timestamp": ts_column, "id": id_column}
    compiler = _Compiler(dialect, columns, filter_text)
    return compiler.node(node), compiler.params


def contains_pattern(text: str) -> str:
    """A LIKE pattern (with ``ESCAPE '\\'``) matching ``text`` anywhere, taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"

"""Compile the query AST to a parameterised SQL condition for SQLite or PostgreSQL.

Pure: no connection, no clock. Values always travel as parameters; only column names from
the fixed table below and operators from the AST's closed set reach the SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trailkeeper.query.ast import (
    And,
    AttributeIs,
    AuthorTypeIs,
    ChangeIs,
    Compare,
    FieldIs,
    HasObject,
    In,
    InNetwork,
    Match,
    MatchAll,
    Node,
    Not,
    ObjectIs,
    Or,
    Text,
)
from trailkeeper.query.fields import fold_key

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
_ONE_WORD = re.compile(r"[^\W_]+")  # tokenised alike by FTS5 and PostgreSQL's simple parser
_INTEGER = {"sqlite": "CASE WHEN {x} GLOB '[0-9]*' OR {x} GLOB '-[0-9]*' THEN CASE WHEN"
                      " substr({x}, 2) NOT GLOB '*[^0-9]*' AND length({x}) <= 18"
                      " THEN CAST({x} AS INTEGER) END END",
            "postgres": "CASE WHEN {x} ~ '^-?[0-9]{{1,18}}$' THEN ({x})::bigint END"}
# Keys and attribute names are compared without case, spaces, '_', '-' and '.', so that
# bfauditlog's ioRunLimit finds the key "Run limit" and changed.default_branch "Default branch".
# (`trailkeeper.query.fields.fold_key` is its Python twin.)
_FOLD_KEY = "lower(replace(replace(replace(replace({x}, ' ', ''), '_', ''), '-', ''), '.', ''))"


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


    def doc(self) -> str:
        """The event's JSON document as the dialect's JSON functions take it."""
        return "CAST(e.doc AS TEXT)" if self.name == "sqlite" else \
            "convert_from(e.doc, 'UTF8')::jsonb"

    def elements(self, array: str) -> str:
        """A FROM item ``j`` with one row per element of the document's ``array``."""
        if self.name == "sqlite":
            return f"json_each({self.doc()}, '$.{array}') j"
        return f"jsonb_array_elements({self.doc()} -> '{array}') j"

    def member(self, name: str) -> str:
        """A text member of the element ``j``."""
        if self.name == "sqlite":
            return f"json_extract(j.value, '$.{name}')"
        return f"(j.value ->> '{name}')"


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
        if isinstance(node, HasObject) and not node.ids:
            # Any object of a type: most types are in a large share of events, so the
            # object index would hand over most of the table; test each candidate row
            # (found through another condition's index, or the time scan) instead.
            # A type never seen (the catalogue knows) ends the scan at once.
            d = self.dialect
            kind = f"upper({d.member('type')})"
            known = f"EXISTS (SELECT 1 FROM catalogue_objects c" \
                    f" WHERE upper(c.type) = {self.param(node.type.upper())})"
            return f"({known} AND EXISTS (SELECT 1 FROM {d.elements('affectedObjects')}" \
                   f" WHERE {kind} = {self.param(node.type.upper())}))"
        if isinstance(node, HasObject):
            sql = f"o.type = {self.param(node.type.upper())}"
            if len(node.ids) == 1:
                sql += f" AND o.object_id = {self.param(node.ids[0])}"
            elif node.ids:
                sql += f" AND o.object_id IN ({', '.join(self.param(i) for i in node.ids)})"
            return f"e.id IN (SELECT o.event_id FROM event_objects o WHERE {sql})"
        if isinstance(node, FieldIs):
            return self.match(self.column(node.field), node.match)
        if isinstance(node, InNetwork):
            column = self.column(node.field)
            if self.dialect.name == "sqlite":
                return f"tk_in_network({column}, {self.param(node.network)})"
            return f"tk_inet({column}) <<= {self.param(node.network)}::inet"
        if isinstance(node, ObjectIs):
            return self.object_is(node)
        if isinstance(node, ChangeIs | AttributeIs):
            return self.element_is(node)
        if isinstance(node, AuthorTypeIs):
            doc = self.dialect.doc()
            value = f"json_extract({doc}, '$.author.type')" if self.dialect.name == "sqlite" \
                else f"({doc} #>> '{{author,type}}')"
            return self.match(value, node.match)
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


    def match(self, value: str, match: Match) -> str:
        """SQL testing the expression ``value`` with ``match``."""
        if match.op == "exists":
            return f"({value} IS NOT NULL AND {value} <> '')"
        if match.op == "like":
            like = "LIKE" if self.dialect.name == "sqlite" else "ILIKE"
            return f"{value} {like} {self.param(match.value)} ESCAPE '\\'"
        if match.op not in _OPS:
            raise ValueError(f"unknown operator {match.op!r}")
        if match.numeric:
            value = _INTEGER[self.dialect.name].format(x=value)
        op = "<>" if match.op == "!=" else match.op
        return f"{value} {op} {self.param(match.value)}"

    def both(self, value: str, match: Match, also: Match | None) -> str:
        if also is None:
            return self.match(value, match)
        return f"({self.match(value, match)} AND {self.match(value, also)})"

    def object_is(self, node: ObjectIs) -> str:
        """Objects are found through the catalogue of objects (small, one row per object),
        then read from their index by (type, id)."""
        if node.part == "type" and node.match.op == "=" and isinstance(node.match.value, str):
            return self.node(HasObject(node.match.value))
        parts = {"type": ("upper(c.type)", "o.type"), "id": ("c.object_id", "o.object_id"),
                 "name": ("c.name", "o.name")}
        if node.part == "id-or-name":
            m = node.match
            known = f"({self.match('c.object_id', m)} OR {self.match('c.name', m)})"
            again = f"({self.match('o.object_id', m)} OR {self.match('o.name', m)})"
        else:
            catalogue_column, index_column = parts[node.part]
            known = self.match(catalogue_column, node.match)
            again = self.match(index_column, node.match)
        return ("e.id IN (SELECT o.event_id FROM event_objects o WHERE (o.type, o.object_id) IN"
                f" (SELECT upper(c.type), c.object_id FROM catalogue_objects c WHERE {known})"
                f" AND {again})")

    def element_is(self, node: ChangeIs | AttributeIs) -> str:
        """A changed value or attribute, found by scanning the documents' arrays; a word
        compared for equality is looked up in the full-text index first."""
        d = self.dialect
        if isinstance(node, ChangeIs):
            array, key, i18n = "changedValues", node.key, d.member("i18nKey")
            names = d.member("key")
            sides = {"from": ["from"], "to": ["to"], "either": ["from", "to"]}[node.side]
        else:
            array, key, i18n = "extraAttributes", node.name, d.member("nameI18nKey")
            names = d.member("name")
            sides = ["value"]
        prefilter = ""
        value = node.match.value
        if node.match.op == "=" and not node.match.numeric and isinstance(value, str) \
                and _ONE_WORD.fullmatch(value):
            compiled = d.text_condition((value,), True, as_filter=self.filter_text)
            if compiled is not None:
                self.params.append(compiled[1])
                prefilter = f"{compiled[0]} AND "
        named = (f"({_FOLD_KEY.format(x=names)} = {self.param(fold_key(key))}"
                 f" OR {i18n} = {self.param(key)})")
        tests = " OR ".join(self.both(d.member(side), node.match, node.also) for side in sides)
        return f"({prefilter}EXISTS (SELECT 1 FROM {d.elements(array)} WHERE {named}" \
               f" AND ({tests})))"

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

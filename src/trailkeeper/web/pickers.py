"""Authors and affected objects as the filter names them, resolved against the lookup
catalogues (the pickers' source, as ``/rest/auditing/1.0/lookup/...``), and the
suggestions the pickers show.

A value may be an id (what the picker puts in the URL) or a name typed by hand. Authors are
searched by id (the indexed column, also what the chart counts fast). The catalogues list
the whole log, so only callers who see every event consult them, as the REST lookups
allow; a delegated administrator's names are resolved among the objects they administer,
and their authors by exact name or id.
"""

from __future__ import annotations

from dataclasses import dataclass

from trailkeeper.auth.principals import Principal
from trailkeeper.query.ast import In, Node, Or, all_of, objects_condition
from trailkeeper.storage.base import CatalogueObject, Storage
from trailkeeper.web.filters import split_object

# Object types offered by the picker (any other is typed as TYPE,ID).
OBJECT_TYPES = ("PROJECT", "REPOSITORY", "USER", "GROUP", "ALERT")
SUGGESTIONS = 20
_AUTHOR_CANDIDATES = 50


@dataclass(frozen=True, slots=True)
class Chip:
    """A chosen author or object as the filter shows it: the URL value (its remove link
    drops it), a label, and whether the catalogue knows it."""

    param: str
    value: str
    label: str
    known: bool


@dataclass(frozen=True, slots=True)
class Resolved:
    chips: list[Chip]
    condition: Node | None


def authors(storage: Storage, principal: Principal, values: tuple[str, ...]) -> Resolved:
    """Author ids or names -> ``author.id`` in the ids found (nothing matches an author
    nobody has seen). Without the catalogue (delegated administrators) a value is taken as
    an id or an exact name."""
    if not values:
        return Resolved([], None)
    if not principal.sees_everything:
        chips = [Chip("author", v, v, True) for v in values]
        return Resolved(chips, Or((In("author.id", values), In("author.name", values))))
    chips = []
    ids: list[str] = []
    for value in values:
        found = storage.lookup_authors(value, limit=_AUTHOR_CANDIDATES)
        match = [a for a in found if a.id == value] or \
            [a for a in found if a.name.casefold() == value.casefold()]
        ids.extend(a.id for a in match)
        label = match[0].name if match else value
        if match and match[0].id != label:
            label = f"{label} ({match[0].id})"
        chips.append(Chip("author", value, label, bool(match)))
    return Resolved(chips, In("author.id", tuple(dict.fromkeys(ids))))


def objects(storage: Storage, principal: Principal, values: tuple[str, ...],
            default_type: str) -> Resolved:
    """``TYPE,ID`` values or names (of ``default_type``, else of every picker type) -> the
    objects' condition (Atlassian's rule: every type present, any id of a type)."""
    if not values:
        return Resolved([], None)
    chips = []
    pairs: list[tuple[str, str]] = []
    nodes: list[Node] = []
    for value in values:
        split = split_object(value)
        if split is not None:
            found = _named(storage, principal, split)
            pairs.append(split)
            label = f"{found.name} ({split[0]} {split[1]})" if found else f"{split[0]} {split[1]}"
            chips.append(Chip("object", value, label, found is not None))
            continue
        matches = [m for m in _by_name(storage, principal, value, default_type) if m.id]
        if not matches:
            nodes.append(In("id", ()))  # a name nobody has seen: nothing matches
        pairs.extend((m.type.upper(), m.id) for m in matches if m.id)
        label = value if not matches else \
            f"{value} ({', '.join(sorted({m.type.upper() for m in matches}))})"
        chips.append(Chip("object", value, label, bool(matches)))
    return Resolved(chips, all_of([*objects_condition(pairs), *nodes]))


def _named(storage: Storage, principal: Principal,
           pair: tuple[str, str]) -> CatalogueObject | None:
    if not principal.sees_everything and pair not in principal.administers:
        return None
    found = storage.find_objects(pair[0], object_id=pair[1], limit=1)
    return found[0] if found else None


def _by_name(storage: Storage, principal: Principal, name: str,
             default_type: str) -> list[CatalogueObject]:
    types = (default_type,) if default_type else OBJECT_TYPES
    found = [o for kind in types for o in storage.find_objects(kind, name=name, limit=20)]
    if principal.sees_everything:
        return found
    return [o for o in found if o.id and (o.type.upper(), o.id) in principal.administers]


def administered(storage: Storage, principal: Principal) -> list[CatalogueObject]:
    """The objects a delegated administrator administers, with their names when the store
    has seen them."""
    listed = []
    for kind, ident in sorted(principal.administers):
        found = storage.find_objects(kind, object_id=ident, limit=5)
        # A grant's own record names the object by its id: prefer a name the product gave.
        named = [o for o in found if o.name != ident] or found
        listed.append(named[0] if named else CatalogueObject(kind, ident, ident, None))
    return listed


def object_suggestions(storage: Storage, principal: Principal, kind: str,
                       search: str) -> list[dict[str, str]]:
    """What the object picker offers for a type and typed text: ``{"value": "TYPE,ID",
    "label": name}``."""
    if principal.sees_everything:
        found = storage.lookup_objects(kind, search or None, limit=SUGGESTIONS)
    else:
        text = search.casefold()
        found = [o for o in administered(storage, principal)
                 if o.type.upper() == kind and (text in o.name.casefold() or text == o.id)]
    return [{"value": f"{o.type.upper()},{o.id}", "label": o.name} for o in found if o.id]


def author_suggestions(storage: Storage, search: str) -> list[dict[str, str]]:
    """What the author picker offers (callers who see every event only)."""
    return [{"value": a.id, "label": a.name}
            for a in storage.lookup_authors(search or None, limit=SUGGESTIONS)]

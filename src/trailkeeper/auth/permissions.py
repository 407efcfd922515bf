"""Read scopes: the condition injected into every query a principal runs.

The scope is part of the SQL, never a filter applied afterwards, so counts, pages and
exports can only ever see permitted rows.

- sysadmins, admins and auditors: everything;
- delegated resource administrators: the events they authored, plus every event with an
  administered object among its affected objects. A PROJECT grant covers the project's
  repositories through the events themselves: Bitbucket names the project beside the
  repository in every repository event (so does the demo generator), so those events carry
  the PROJECT object. An event naming a repository without its project needs a
  REPOSITORY grant; the scope never guesses from other events.
- plain users: the events they authored (like ``bfauditlog -a``).

`may_view_objects` is Atlassian's delegated-view rule for ``affectedObject``: the caller must
administer every listed object. There a repository also counts as administered when the
store has seen it named together with an administered project (as the Bitbucket views find
a project's repositories).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from trailkeeper.auth.principals import Principal
from trailkeeper.query.ast import HasObject, In, MatchAll, Node, Or, all_of
from trailkeeper.storage.base import Storage


def read_scope(principal: Principal) -> Node:
    if principal.sees_everything:
        return MatchAll()
    own: Node = In("author.id", (principal.name,))
    if not principal.administers:
        return own
    by_type: dict[str, list[str]] = defaultdict(list)
    for kind, ident in sorted(principal.administers):
        by_type[kind.upper()].append(ident)
    return Or((own, *(HasObject(kind, tuple(ids)) for kind, ids in by_type.items())))


def scoped(principal: Principal, where: Node) -> Node:
    """``where`` restricted to what ``principal`` may read."""
    return all_of([read_scope(principal), where])


def administers(principal: Principal, kind: str, ident: str, storage: Storage) -> bool:
    """Whether ``principal`` administers the object (directly, or a repository of an
    administered project)."""
    kind = kind.upper()
    if (kind, ident) in principal.administers:
        return True
    if kind != "REPOSITORY":
        return False
    return any(storage.objects_seen_together("REPOSITORY", ident, "PROJECT", project)
               for other, project in sorted(principal.administers) if other == "PROJECT")


def may_view_objects(principal: Principal, objects: Iterable[tuple[str, str]],
                     storage: Storage) -> bool:
    """Atlassian's rule: unrestricted roles see all; others must list at least one object
    and administer every one listed."""
    if principal.sees_everything:
        return True
    listed = list(objects)
    return bool(listed) and all(administers(principal, kind, ident.strip(), storage)
                                for kind, ident in listed)

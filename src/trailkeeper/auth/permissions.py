"""Read scopes: the condition injected into every query a principal runs.

The scope is part of the SQL, never a filter applied afterwards, so counts, pages and
exports can only ever see permitted rows. Delegated administration arrives with the access
control issue; until then a plain user sees the events they authored.
"""

from __future__ import annotations

from trailkeeper.auth.principals import Principal
from trailkeeper.query.ast import In, MatchAll, Node, all_of


def read_scope(principal: Principal) -> Node:
    if principal.sees_everything:
        return MatchAll()
    return In("author.id", (principal.name,))


def scoped(principal: Principal, where: Node) -> Node:
    """``where`` restricted to what ``principal`` may read."""
    return all_of([read_scope(principal), where])

"""Which alerts an action receives: routing by rule, tag and level.

Every ``[[action]]`` table of trailkeeper.toml has these keys beside its own; an alert goes
to the action when every criterion given matches (no criteria: every alert).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trailkeeper.alerts.model import AlertRecord
from trailkeeper.detection.model import level_rank

Level = Literal["informational", "low", "medium", "high", "critical"]


class RouteConfig(BaseModel):
    """The routing keys shared by every action's configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    # Rule ids, names or titles (exact, case-insensitive); any of them.
    rules: tuple[str, ...] = ()
    # Tag globs such as "attack.*" or "trailkeeper.builtin"; any of them.
    tags: tuple[str, ...] = ()
    # This level and above.
    min_level: Level | None = None
    # Alerts found by `rules hunt` are delivered only to actions that ask for them.
    include_hunts: bool = False

    def matches(self, alert: AlertRecord) -> bool:
        if alert.origin == "hunt" and not self.include_hunts:
            return False
        if self.min_level is not None and level_rank(alert.level) < level_rank(self.min_level):
            return False
        if self.rules:
            wanted = {r.casefold() for r in self.rules}
            if alert.rule_id.casefold() not in wanted \
                    and alert.rule_title.casefold() not in wanted:
                return False
        if self.tags:
            tags = [t.casefold() for t in alert.tags]
            if not any(fnmatchcase(t, g.casefold()) for g in self.tags for t in tags):
                return False
        return True

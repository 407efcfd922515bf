"""The rules the engine runs, as loaded from SigmaHQ-format YAML.

`LoadedRule` wraps a pySigma `SigmaRule` (one event matches or not); `LoadedCorrelation`
wraps a `SigmaCorrelationRule` (counts or sequences of rule matches over time). Both carry
the metadata that alerts and routing use: a stable ``id`` (the rule's UUID, else its
``name``, else a name derived from its file), title, level and tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

# Sigma's levels, least to most severe.
LEVELS: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")


def level_rank(level: str | None) -> int:
    """0 for informational … 4 for critical; -1 for none or an unknown level."""
    return LEVELS.index(level) if level in LEVELS else -1


@dataclass(frozen=True, eq=False)
class LoadedRule:
    """A detection rule: matches single events."""

    id: str
    title: str
    sigma: SigmaRule
    name: str | None = None
    level: str | None = None
    tags: tuple[str, ...] = ()
    status: str | None = None
    path: Path | None = None
    builtin: bool = False
    # False when a correlation refers to it without `generate: true`: its matches feed
    # the correlation but raise no alert of their own.
    generate: bool = True


@dataclass(frozen=True, eq=False)
class LoadedCorrelation:
    """A correlation rule over the matches of other rules (or correlations)."""

    id: str
    title: str
    sigma: SigmaCorrelationRule
    name: str | None = None
    level: str | None = None
    tags: tuple[str, ...] = ()
    status: str | None = None
    path: Path | None = None
    builtin: bool = False
    generate: bool = True  # False when an outer correlation refers to it


@dataclass(frozen=True)
class RuleProblem:
    """What `rules lint` reports: an error keeps the rule out, a warning does not."""

    severity: Literal["error", "warning"]
    message: str
    path: Path | None = None
    rule: str | None = None  # the rule's id or title, when known


@dataclass
class RuleSet:
    """Everything loaded from the rule sources, with the problems found on the way."""

    rules: list[LoadedRule] = field(default_factory=list)
    correlations: list[LoadedCorrelation] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)

    @property
    def errors(self) -> list[RuleProblem]:
        return [p for p in self.problems if p.severity == "error"]

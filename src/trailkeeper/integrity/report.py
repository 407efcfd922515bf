"""What a verification found: the `Report` every verifier (store, server, files) returns.

Exit codes of ``trailkeeper verify``: 0 when everything verified; 1 when something was
altered (any `Problem`); 3 when nothing was altered but some events are not covered by any
signed checkpoint yet (the newest ones, or files that start after their last checkpoint),
unless the caller allows that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ProblemKind = Literal["edited", "deleted", "inserted", "reordered", "checkpoint", "tree",
                      "unreadable", "truncated"]

MAX_PROBLEMS = 100  # enough to show what happened; the count goes on


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not verify, with where it is."""

    kind: ProblemKind
    message: str
    event_id: int | None = None
    where: str | None = None  # a file and line, a tile, a checkpoint

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "event_id": self.event_id,
                "where": self.where}


@dataclass(slots=True)
class Report:
    """The outcome of one verification."""

    source: str
    events_verified: int = 0  # events whose leaf matched, under a verified checkpoint
    checkpoints_verified: int = 0
    checkpoints_unchecked: int = 0  # older than what retention kept
    tree_size: int = 0
    pruned: int = 0  # events removed by retention, each attested
    uncovered: int = 0  # events not (yet) under a verified checkpoint
    uncovered_range: tuple[int, int] | None = None  # (first, last) event id uncovered
    # Events in files that start after the log's beginning with nothing to place them.
    unplaced: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    notes: list[str] = field(default_factory=list)

    def problem(self, kind: ProblemKind, message: str, *, event_id: int | None = None,
                where: str | None = None) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(kind, message, event_id, where))

    def not_covered(self, event_id: int) -> None:
        self.uncovered += 1
        first, last = self.uncovered_range or (event_id, event_id)
        self.uncovered_range = (min(first, event_id), max(last, event_id))

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def exit_code(self, *, allow_uncovered: bool = False) -> int:
        """0, 1 or 3 (see the module's description); ``allow_uncovered`` accepts the newest
        events not yet under a checkpoint, never events that could not be placed at all."""
        if not self.ok:
            return 1
        if self.checkpoints_verified == 0 or self.unplaced \
                or (self.uncovered and not allow_uncovered):
            return 3
        return 0

    def merge(self, other: Report) -> None:
        """Add a part's findings (a verifier that split the work)."""
        self.events_verified += other.events_verified
        self.pruned += other.pruned
        for p in other.problems:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(p)
        self.problem_count += other.problem_count
        if other.uncovered_range is not None:
            a, b = other.uncovered_range
            first, last = self.uncovered_range or (a, b)
            self.uncovered_range = (min(first, a), max(last, b))
        self.uncovered += other.uncovered
        self.notes += other.notes

    def summary(self) -> str:
        if not self.ok:
            return (f"FAILED: {self.problem_count} problem(s); first: "
                    f"{self.problems[0].message}")
        covered = (f"{self.events_verified:,} events verified against "
                   f"{self.checkpoints_verified:,} signed checkpoint(s)")
        if self.pruned:
            covered += f"; {self.pruned:,} removed by retention, as recorded"
        if self.checkpoints_verified == 0:
            return "NOT VERIFIED: no checkpoint signed by a trusted key was found"
        if self.unplaced:
            covered += (f"; {self.unplaced:,} event(s) before the first checkpoint in the files"
                        " could not be checked")
        if self.uncovered and self.uncovered_range is not None:
            first, last = self.uncovered_range
            return (f"OK: {covered}; {self.uncovered:,} event(s) (#{first} to #{last}) are not "
                    "covered by a checkpoint yet")
        return f"OK: {covered}"

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "source": self.source, "summary": self.summary(),
                "events_verified": self.events_verified,
                "checkpoints_verified": self.checkpoints_verified,
                "checkpoints_unchecked": self.checkpoints_unchecked,
                "tree_size": self.tree_size, "pruned": self.pruned,
                "uncovered": self.uncovered,
                "uncovered_range": list(self.uncovered_range) if self.uncovered_range else None,
                "unplaced": self.unplaced,
                "problem_count": self.problem_count,
                "problems": [p.to_json() for p in self.problems], "notes": self.notes}

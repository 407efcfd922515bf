"""One exception tree; each class knows its HTTP status and CLI exit code.

The API has one handler that turns any `TrailkeeperError` into a JSON body, the CLI one that
turns it into a message and an exit code, so code raising errors never thinks about either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class TrailkeeperError(Exception):
    """Base of every error Trailkeeper raises on purpose."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"status": self.http_status, "message": self.message, "errors": []}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with one field; `index` is the item's position in a batch."""

    field: str
    message: str
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.index is not None:
            body = {"index": self.index, **body}
        return body

    def __str__(self) -> str:
        where = f"item {self.index}: " if self.index is not None else ""
        return f"{where}{self.field}: {self.message}"


class InvalidEventError(TrailkeeperError, ValueError):
    """An event (or a batch of them) failed validation; every problem is listed."""

    http_status = 400
    exit_code = 2

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        summary = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {count - 5} more)" if count > 5 else ""
        super().__init__(f"{count} invalid field{'s' if count != 1 else ''}: {summary}{more}")

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.http_status,
            "message": "Invalid event" if len(self.problems) == 1 else "Invalid events",
            "errors": [p.to_json() for p in self.problems],
        }


class BadRequestError(TrailkeeperError):
    """The request as a whole is malformed (not JSON, wrong content type, ...)."""

    http_status = 400
    exit_code = 2


class PayloadTooLargeError(TrailkeeperError):
    http_status = 413
    exit_code = 2


class ConflictError(TrailkeeperError):
    """A `uid` was reused with a different body."""

    http_status = 409
    exit_code = 1

    def __init__(self, message: str, *, uid: str, index: int | None = None) -> None:
        super().__init__(message)
        self.uid = uid
        self.index = index

    def to_json(self) -> dict[str, Any]:
        problem = FieldProblem("uid", self.message, self.index)
        return {"status": self.http_status, "message": "Conflict", "errors": [problem.to_json()]}


class NotFoundError(TrailkeeperError):
    http_status = 404
    exit_code = 1


class AuthenticationError(TrailkeeperError):
    http_status = 401
    exit_code = 3


class PermissionDeniedError(TrailkeeperError):
    http_status = 403
    exit_code = 3


class RateLimitedError(TrailkeeperError):
    """An API token's rate limit is used up; a slot frees in `retry_after` seconds."""

    http_status = 429
    exit_code = 4

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(TrailkeeperError):
    """The store cannot take writes right now; clients should retry after `retry_after` s."""

    http_status = 503
    exit_code = 4

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(TrailkeeperError):
    """Bad settings or command-line options."""

    http_status = 500
    exit_code = 2


class StorageError(TrailkeeperError):
    """The store failed in a way the caller cannot fix."""

    http_status = 500
    exit_code = 4


@dataclass(frozen=True, slots=True)
class ParameterProblem:
    """A failing query parameter, with Atlassian's i18n key."""

    parameter: str
    key: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "message": self.message, "parameter": self.parameter}


class InvalidQueryError(TrailkeeperError):
    """Query parameters failed validation; the body lists every failing parameter."""

    http_status = 400
    exit_code = 2

    def __init__(self, problems: Sequence[ParameterProblem]) -> None:
        self.problems = list(problems)
        super().__init__("Invalid Query: " + "; ".join(
            f"{p.parameter}: {p.message}" for p in self.problems))

    def to_json(self) -> dict[str, Any]:
        return {"status": self.http_status, "message": "Invalid Query",
                "errors": [p.to_json() for p in self.problems]}


class QuerySyntaxError(BadRequestError):
    """A query-language string that cannot be parsed or names an unknown field."""

    def __init__(self, detail: str, *, position: int, parameter: str = "q") -> None:
        self.detail = detail
        self.column = position + 1  # 1-based, as editors count
        self.parameter = parameter
        super().__init__(f"query error at column {self.column}: {detail}")

    def to_json(self) -> dict[str, Any]:
        return {"status": self.http_status, "message": self.message,
                "errors": [{"parameter": self.parameter, "column": self.column,
                            "message": self.detail}]}


class AlreadyFollowingError(TrailkeeperError):
    """Another `trailkeeper tail` holds this state file."""

    http_status = 409
    exit_code = 1


class StateError(TrailkeeperError):
    """A `trailkeeper tail` state file exists but cannot be used."""

    http_status = 500
    exit_code = 2


# -- access control ---------------------------------------------------------------------------


class AlreadyExistsError(TrailkeeperError):
    """A user or group of that name exists already."""

    http_status = 409
    exit_code = 1

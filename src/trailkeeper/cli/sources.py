"""Where ``trailkeeper search`` reads from: a local store (``--db``) or a server (``-H``).

Both offer the same three things — the class list, the fields of classes, and an export
stream — so the command itself does not care which it talks to. A server is asked through
the native API (``/api/v1/events``, ``/api/v1/classes``), which applies the caller's
permission scope and records the search; a local store is read with the file owner's rights
(all events), and the search is recorded in it ("Audit Log search performed", or "Audit Log
exported" with ``-o FILE``) as the operating-system user.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx
import orjson

from trailkeeper.auth.audit_events import (
    EXPORTED,
    SEARCHED,
    Results,
    counted,
    covered,
    exported,
    search_performed,
)
from trailkeeper.cli.options import operator_actor
from trailkeeper.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    TrailkeeperError,
    UnavailableError,
)
from trailkeeper.export.formats import ExportOptions, export
from trailkeeper.ingest.service import AuditService
from trailkeeper.query.classes import audit_classes, class_fields, standard_fields
from trailkeeper.query.request import build_search
from trailkeeper.storage.base import Storage


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One search as the command line put it."""

    query: str
    format: str
    categories: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    fields: str | None = None
    sort: str | None = None
    offset: int = 0
    limit: int | None = None
    bare: bool = False
    tz: str | None = None
    since: str | None = None
    until: str | None = None
    to_file: bool = False  # -o FILE: an export (else a search shown on the terminal)

    def describe(self) -> str:
        """The query as the record of the search names it (bfauditlog's options)."""
        parts = [("query", self.query), ("class", ",".join(self.categories)),
                 ("user", ",".join(self.authors)), ("fields", self.fields or ""),
                 ("sort", self.sort or ""), ("from", self.since or ""),
                 ("to", self.until or ""), ("tz", self.tz or ""),
                 ("offset", str(self.offset) if self.offset else ""),
                 ("limit", "" if self.limit is None else str(self.limit))]
        return "&".join(f"{name}={value}" for name, value in parts if value)


@dataclass(frozen=True, slots=True)
class ClassInfo:
    name: str
    readable: bool


class Source(Protocol):
    def classes(self) -> list[ClassInfo]: ...

    def fields(self, classes: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
        """The standard fields, and the typed fields of each class."""
        ...

    def count(self, request: ExportRequest) -> int: ...

    def export(self, request: ExportRequest) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class LocalSource:
    """A store on this machine, read directly; each export is recorded in it."""

    def __init__(self, db_url: str) -> None:
        self.service = AuditService.open(db_url)
        self.storage: Storage = self.service.storage

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(c.name, True) for c in audit_classes(self.storage)]

    def fields(self, classes: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
        return standard_fields(), {name: class_fields(self.storage, name) for name in classes}

    def _search(self, request: ExportRequest) -> Any:
        return build_search(request.query, sort=request.sort, fields=request.fields,
                            tz=request.tz, categories=request.categories,
                            authors=request.authors, since=request.since,
                            until=request.until)

    def count(self, request: ExportRequest) -> int:
        return self.storage.count(self._search(request).where)

    def export(self, request: ExportRequest) -> Iterator[bytes]:
        search = self._search(request)
        total = None if request.bare else self.storage.count(search.where)
        rows = self.storage.stream(search.where, order=search.order, offset=request.offset)
        if request.limit is not None:
            rows = itertools.islice(rows, request.limit)
        options = ExportOptions(fields=search.fields, bare=request.bare, total=total,
                                offset=request.offset)
        return export(counted(rows, lambda results: self._record(request, results)),
                      request.format, options)  # type: ignore[arg-type]

    def _record(self, request: ExportRequest, results: Results) -> None:
        config = self.service.governance.config
        if request.to_file and covered(config, EXPORTED):
            self.service.audit(exported(operator_actor(), request.describe(), request.format,
                                        results))
        elif not request.to_file and covered(config, SEARCHED):
            self.service.audit(search_performed(operator_actor(), request.describe(), results))

    def close(self) -> None:
        self.service.close()  # writes the record of the search


class RemoteSource:
    """A Trailkeeper server, over its native API with HTTP Basic authentication."""

    def __init__(self, base_url: str, user: str | None, password: str | None, *,
                 timeout: float = 60.0) -> None:
        auth = (user, password or "") if user else None
        self.http = httpx.Client(base_url=base_url.rstrip("/"), auth=auth, timeout=timeout,
                                 headers={"User-Agent": "trailkeeper-search"})

    def _get(self, path: str, params: Any = None) -> Any:
        try:
            response = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"cannot reach {self.http.base_url}: {exc}") from None
        _check(response)
        return response.json()

    def classes(self) -> list[ClassInfo]:
        body = self._get("/api/v1/classes")
        return [ClassInfo(c["name"], bool(c["readable"])) for c in body["classes"]]

    def fields(self, classes: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
        body = self._get("/api/v1/classes/fields", [("class", name) for name in classes])
        return body["standard"], {c["name"]: c["fields"] for c in body["classes"]}

    def _params(self, request: ExportRequest, fmt: str) -> list[tuple[str, str]]:
        params = [("q", request.query), ("format", fmt), ("offset", str(request.offset))]
        params += [("category", c) for c in request.categories]
        params += [("author", a) for a in request.authors]
        for name, value in (("fields", request.fields), ("sort", request.sort),
                            ("tz", request.tz), ("from", request.since),
                            ("to", request.until)):
            if value:
                params.append((name, value))
        if request.limit is not None:
            params.append(("limit", str(request.limit)))
        return params

    def count(self, request: ExportRequest) -> int:
        counting = replace(request, fields=None, limit=1)  # one row: only "total" matters
        params = [*self._params(counting, "json"), ("count", "true")]
        return int(self._get("/api/v1/events", params)["total"])

    def export(self, request: ExportRequest) -> Iterator[bytes]:
        params = self._params(request, request.format)
        params += [("bare", "true" if request.bare else "false"),
                   ("count", "false" if request.bare else "true")]
        return self._stream(params)

    def _stream(self, params: list[tuple[str, str]]) -> Iterator[bytes]:
        try:
            with self.http.stream("GET", "/api/v1/events", params=tuple(params)) as response:
                if response.status_code >= 400:
                    response.read()
                    _check(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise UnavailableError(f"reading from {self.http.base_url} failed: {exc}") from None

    def close(self) -> None:
        self.http.close()


_BY_STATUS: dict[int, type[TrailkeeperError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError,
}


def _check(response: httpx.Response) -> None:
    """A server's error as ours (its exit code follows): the message is the server's."""
    if response.status_code < 400:
        return
    message = f"the server answered {response.status_code}"
    with contextlib.suppress(ValueError):
        body = orjson.loads(response.content)
        message = body.get("message") or message
        errors = body.get("errors") or []
        if errors and isinstance(errors[0], dict) and "message" in errors[0] \
                and errors[0]["message"] not in message:
            message += f": {errors[0]['message']}"
    kind = _BY_STATUS.get(response.status_code)
    if kind is not None:
        raise kind(message)
    raise UnavailableError(message)

"""The events Trailkeeper records about access to itself (``DESIGN.md`` §7).

- every authentication outcome, in area SECURITY: "User authenticated" (FULL), "User login
  failed" and "Access denied" (ADVANCED), with the reason; the default coverage (BASE) skips
  them, as Atlassian's does, so callers ask `covered` before building one;
- every search and export of the log: "Audit Log search performed" and "Audit Log exported"
  (AUDIT_LOG, BASE), with the query, as Atlassian records them (atlassian-audit.md §3.6);
- every change to users, groups, grants and API tokens (BASE).

Pure builders (no store, no clock): the API and the CLI record the same events. Nothing
here ever receives a password or a token's text: the authenticators fill an `Attempt` with
names, token ids and reasons only, and attribute names are chosen so that redaction leaves
their values readable (``Token ID`` describes a token; it is not one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from trailkeeper.auth.authlog import RequestInfo
from trailkeeper.auth.principals import Principal
from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    NOT_ONE_LINE,
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.model.timestamps import format_iso
from trailkeeper.storage.base import Grant, StoredEvent, TokenRecord

_SECURITY, _AUDIT_LOG = CoverageArea.SECURITY, CoverageArea.AUDIT_LOG
_USERS, _PERMISSIONS = CoverageArea.USER_MANAGEMENT, CoverageArea.PERMISSIONS
_BASE, _ADVANCED, _FULL = CoverageLevel.BASE, CoverageLevel.ADVANCED, CoverageLevel.FULL
_KEY = "trailkeeper.audit."

PASSWORD = "password"  # noqa: S105 (an authentication method's name)
API_TOKEN = "API token"  # noqa: S105 (a method's name)
API, CLI, BROWSER = "API", "CLI", "Browser"  # the events' method


class Reason(StrEnum):
    """Why a request was refused (the "Reason" attribute)."""

    NO_SUCH_USER = "unknown user"
    WRONG_PASSWORD = "wrong password"  # noqa: S105 (a reason, not a password)
    USER_DISABLED = "user disabled"
    MALFORMED = "malformed credentials"
    UNSUPPORTED_SCHEME = "unsupported authentication scheme"
    MALFORMED_TOKEN = "malformed token"  # noqa: S105
    NO_SUCH_TOKEN = "unknown token"  # noqa: S105
    WRONG_SECRET = "wrong token secret"  # noqa: S105
    TOKEN_REVOKED = "token revoked"  # noqa: S105
    TOKEN_EXPIRED = "token expired"  # noqa: S105
    OTHER_USERS_TOKEN = "token of another user"  # noqa: S105
    OWNER_DISABLED = "token owner disabled"
    IP_NOT_ALLOWED = "IP address not allowed"
    RATE_LIMITED = "rate limited"
    SCOPE_REFUSED = "token scope refused"


def _type(area: CoverageArea, level: CoverageLevel, category: str, action: str,
          category_key: str, action_key: str) -> AuditType:
    return AuditType(category, action, area, level, category_i18n_key=category_key,
                     action_i18n_key=action_key)


def _ours(area: CoverageArea, level: CoverageLevel, category: str, action: str) -> AuditType:
    """A type of Trailkeeper's own, keyed ``trailkeeper.audit.category.<category>`` and
    ``trailkeeper.audit.action.<category>.<action>`` (lower case, without spaces)."""
    def key(text: str) -> str:
        return text.lower().replace(" ", "")

    return _type(area, level, category, action, f"{_KEY}category.{key(category)}",
                 f"{_KEY}action.{key(category)}.{key(action)}")


AUTHENTICATED = _ours(_SECURITY, _FULL, "Authentication", "User authenticated")
LOGIN_FAILED = _ours(_SECURITY, _ADVANCED, "Authentication", "User login failed")
ACCESS_DENIED = _ours(_SECURITY, _ADVANCED, "Security", "Access denied")
SEARCHED = _type(_AUDIT_LOG, _BASE, "Auditing", "Audit Log search performed",
                 "atlassian.audit.event.category.audit",
                 "atlassian.audit.event.action.audit.search")
EXPORTED = _type(_AUDIT_LOG, _BASE, "Auditing", "Audit Log exported",
                 "atlassian.audit.event.category.audit",
                 "atlassian.audit.event.action.audit.exported")
USER_CREATED = _ours(_USERS, _BASE, "Users and groups", "User created")
PASSWORD_CHANGED = _ours(_USERS, _BASE, "Users and groups", "User password changed")
USER_DISABLED = _ours(_USERS, _BASE, "Users and groups", "User disabled")
USER_ENABLED = _ours(_USERS, _BASE, "Users and groups", "User enabled")
GROUP_CREATED = _ours(_USERS, _BASE, "Users and groups", "User group created")
GROUP_DELETED = _ours(_USERS, _BASE, "Users and groups", "User group deleted")
MEMBER_ADDED = _ours(_USERS, _BASE, "Users and groups", "User added to user group")
MEMBER_REMOVED = _ours(_USERS, _BASE, "Users and groups", "User deleted from user group")
ROLE_CHANGED = _ours(_PERMISSIONS, _BASE, "Permissions", "User role changed")
GRANTED = _ours(_PERMISSIONS, _BASE, "Permissions", "Permission granted")
REVOKED = _ours(_PERMISSIONS, _BASE, "Permissions", "Permission revoked")
TOKEN_CREATED = _ours(_SECURITY, _BASE, "Security", "API token created")
TOKEN_REVOKED = _ours(_SECURITY, _BASE, "Security", "API token revoked")

CATALOGUE = (AUTHENTICATED, LOGIN_FAILED, ACCESS_DENIED, SEARCHED, EXPORTED, USER_CREATED,
             PASSWORD_CHANGED, USER_DISABLED, USER_ENABLED, GROUP_CREATED, GROUP_DELETED,
             MEMBER_ADDED, MEMBER_REMOVED, ROLE_CHANGED, GRANTED, REVOKED, TOKEN_CREATED,
             TOKEN_REVOKED)
# Every attribute and changed-value name used here (a test checks none looks like a secret).
ATTRIBUTE_NAMES = ("Authentication method", "Token ID", "Request", "Reason", "User name",
                   "Required scope", "Query", "Results returned", "ID Range",
                   "Timestamp Range", "Format", "Role", "Permission", "Token scopes",
                   "Expiry", "Allowed IP ranges", "Rate limit", "Token description")


def covered(config: GovernanceConfig, event_type: AuditType) -> bool:
    """Whether the coverage records events of this type: ask before building one on a hot
    path (the policy still decides, denylist included, when the event is recorded)."""
    return config.coverage[event_type.area].rank >= event_type.level.rank


def _line(text: str, limit: int = 200) -> str:
    """Caller-supplied text (a user name, a path) fit for an attribute: one line, bounded."""
    return NOT_ONE_LINE.sub("?", text[:limit])


# -- authentication ------------------------------------------------------------------------


@dataclass(slots=True)
class Attempt:
    """What one request's authentication found out, filled in as it goes (names, token
    ids and reasons: never a secret). The first credential tried names the method, and
    the first refusal is the reason."""

    method: str | None = None
    user: str | None = None
    known: bool = False  # the user exists
    token_id: str | None = None
    reason: str | None = None

    def tried(self, method: str, user: str | None, token_id: str | None = None) -> None:
        if self.method is None:
            self.method, self.user, self.token_id = method, user, token_id

    def refused(self, reason: str, *, known: bool | None = None) -> None:
        if self.reason is None:
            self.reason = reason
        if known is not None:
            self.known = known

    @classmethod
    def of(cls, principal: Principal) -> Attempt:
        """The attempt that authenticated ``principal`` (for refusals after it)."""
        return cls(API_TOKEN if principal.token_id else PASSWORD, principal.name, True,
                   principal.token_id)


def _request(info: RequestInfo) -> AuditAttribute:
    return AuditAttribute("Request", _line(f"{info.method} {info.path}", 500))


def authenticated(principal: Principal, info: RequestInfo, *, method: str = API) -> AuditEvent:
    """A request authenticated by a password or an API token (SECURITY, FULL); ``method``
    is the events' method (``API``; the web UI's sign-ins say ``Browser``)."""
    attributes = [AuditAttribute("Authentication method",
                             API_TOKEN if principal.token_id else PASSWORD)]
    if principal.token_id:
        attributes.append(AuditAttribute("Token ID", principal.token_id))
    attributes.append(_request(info))
    return AuditEvent(type=AUTHENTICATED, author=principal.as_author(), source=info.client,
                      method=method, extra_attributes=attributes)


def refused(attempt: Attempt, info: RequestInfo, *, denied: bool,
            reason: str | None = None, required_scope: str | None = None,
            method: str = API) -> AuditEvent:
    """A refused request (SECURITY, ADVANCED): "User login failed" when the caller could not
    be authenticated, "Access denied" (``denied``) when an authenticated caller was refused.

    The author is the user when they exist, else Anonymous with the name that was tried.
    """
    attributes = []
    if attempt.method:
        attributes.append(AuditAttribute("Authentication method", attempt.method))
    if attempt.token_id:
        attributes.append(AuditAttribute("Token ID", _line(attempt.token_id, 64)))
    attributes.append(AuditAttribute("Reason", _line(reason or attempt.reason or "refused", 500)))
    if required_scope:
        attributes.append(AuditAttribute("Required scope", required_scope))
    attributes.append(_request(info))
    if attempt.user and attempt.known:
        author = AuditAuthor(id=attempt.user, name=attempt.user, type="user")
    else:
        author = AuditAuthor.ANONYMOUS
        if attempt.user:
            attributes.append(AuditAttribute("User name", _line(attempt.user)))
    return AuditEvent(type=ACCESS_DENIED if denied else LOGIN_FAILED, author=author,
                      source=info.client, method=method, extra_attributes=attributes)


# -- searches and exports ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts and from where: the author, source (client address) and method of the
    events recording what they did."""

    author: AuditAuthor
    source: str | None = None
    method: str | None = None

    @classmethod
    def of(cls, principal: Principal, client: str | None) -> Actor:
        return cls(principal.as_author(), client, API)


@dataclass(slots=True)
class Results:
    """What a search or export returned: how many events, their id and time ranges."""

    count: int = 0
    min_id: int = 0
    max_id: int = 0
    first_ms: int = 0
    last_ms: int = 0

    def add(self, row: StoredEvent) -> None:
        if self.count == 0:
            self.min_id = self.max_id = row.id
            self.first_ms = self.last_ms = row.timestamp_ms
        else:
            if row.id < self.min_id:
                self.min_id = row.id
            elif row.id > self.max_id:
                self.max_id = row.id
            if row.timestamp_ms < self.first_ms:
                self.first_ms = row.timestamp_ms
            elif row.timestamp_ms > self.last_ms:
                self.last_ms = row.timestamp_ms
        self.count += 1

    @classmethod
    def of(cls, rows: Iterable[StoredEvent]) -> Results:
        results = cls()
        for row in rows:
            results.add(row)
        return results

    def attributes(self) -> list[AuditAttribute]:
        """Atlassian's: "Results returned", "ID Range" and "Timestamp Range"."""
        found = [AuditAttribute("Results returned", str(self.count),
                                "atlassian.audit.event.attribute.results")]
        if self.count:
            found.append(AuditAttribute("ID Range", f"{self.min_id} - {self.max_id}",
                                        "atlassian.audit.event.attribute.id"))
            found.append(AuditAttribute(
                "Timestamp Range", f"{format_iso(self.first_ms)} - {format_iso(self.last_ms)}",
                "atlassian.audit.event.attribute.timestamp"))
        return found


def counted(rows: Iterable[StoredEvent], done: Callable[[Results], object]
            ) -> Iterator[StoredEvent]:
    """``rows``, counted as they pass; ``done`` gets the results when the stream ends (or
    stops early: a client that went away still received what was sent)."""
    results = Results()
    try:
        for row in rows:
            results.add(row)
            yield row
    finally:
        done(results)


def query_text(params: Iterable[tuple[str, str]], known: Iterable[str]) -> str:
    """The query as the caller asked it: the ``known`` parameters (the API's own; anything
    else was ignored and is not recorded), decoded, ``name=value`` joined with ``&``."""
    names = frozenset(known)
    return "&".join(f"{k}={v}" for k, v in params if k in names)


def _query(query: str) -> AuditAttribute:
    return AuditAttribute("Query", _line(query, 4000), "atlassian.audit.event.attribute.query")


def search_performed(actor: Actor, query: str, results: Results) -> AuditEvent:
    """A search of the log that answered a page (AUDIT_LOG, BASE)."""
    return AuditEvent(type=SEARCHED, author=actor.author, source=actor.source,
                      method=actor.method,
                      extra_attributes=[_query(query), *results.attributes()])


def exported(actor: Actor, query: str, fmt: str, results: Results) -> AuditEvent:
    """An export of the log (CSV, NDJSON, XML, text, or JSON to a file; AUDIT_LOG, BASE)."""
    return AuditEvent(type=EXPORTED, author=actor.author, source=actor.source,
                      method=actor.method,
                      extra_attributes=[_query(query), AuditAttribute("Format", fmt.upper()),
                                        *results.attributes()])


# -- users, groups, grants and tokens ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trail:
    """Where the records of management changes go: ``record`` (durable: the change is
    acknowledged only once its record is stored) with ``actor`` as their author."""

    actor: Actor
    record: Callable[[AuditEvent], object]

    def add(self, event: AuditEvent) -> None:
        self.record(event)


def _user(name: str) -> AuditResource:
    return AuditResource("USER", name, id=name)


def _group(name: str) -> AuditResource:
    return AuditResource("GROUP", name, id=name)


def _change(actor: Actor, event_type: AuditType, objects: Sequence[AuditResource],
            attributes: Sequence[AuditAttribute] = (),
            changes: Sequence[ChangedValue] = ()) -> AuditEvent:
    return AuditEvent(type=event_type, author=actor.author, source=actor.source,
                      method=actor.method, affected_objects=objects,
                      extra_attributes=attributes, changed_values=changes)


def user_created(actor: Actor, name: str, role: str) -> AuditEvent:
    return _change(actor, USER_CREATED, [_user(name)], [AuditAttribute("Role", role)])


def password_changed(actor: Actor, name: str) -> AuditEvent:
    """Only that it changed: neither password, nor its hash."""
    return _change(actor, PASSWORD_CHANGED, [_user(name)])


def role_changed(actor: Actor, name: str, old: str, new: str) -> AuditEvent:
    return _change(actor, ROLE_CHANGED, [_user(name)], changes=[ChangedValue("Role", old, new)])


def user_disabled(actor: Actor, name: str, disabled: bool) -> AuditEvent:
    return _change(actor, USER_DISABLED if disabled else USER_ENABLED, [_user(name)])


def group_created(actor: Actor, name: str) -> AuditEvent:
    return _change(actor, GROUP_CREATED, [_group(name)])


def group_deleted(actor: Actor, name: str) -> AuditEvent:
    return _change(actor, GROUP_DELETED, [_group(name)])


def member_added(actor: Actor, group: str, user: str) -> AuditEvent:
    return _change(actor, MEMBER_ADDED, [_user(user), _group(group)])


def member_removed(actor: Actor, group: str, user: str) -> AuditEvent:
    return _change(actor, MEMBER_REMOVED, [_user(user), _group(group)])


def _grant_parts(grant: Grant) -> tuple[list[AuditResource], list[AuditAttribute]]:
    grantee = _user(grant.grantee) if grant.grantee_kind == "user" else _group(grant.grantee)
    if grant.role is not None:
        return [grantee], [AuditAttribute("Permission", grant.role)]
    target = AuditResource(grant.target_type, grant.target_id, id=grant.target_id)
    return [grantee, target], [AuditAttribute("Permission",
                                          f"{grant.target_type},{grant.target_id}")]


def permission_granted(actor: Actor, grant: Grant) -> AuditEvent:
    """A role or an object's administration given; the object is affected too, so its
    delegated administrators see who else was made one."""
    objects, attributes = _grant_parts(grant)
    return _change(actor, GRANTED, objects, attributes)


def permission_revoked(actor: Actor, grant: Grant) -> AuditEvent:
    objects, attributes = _grant_parts(grant)
    return _change(actor, REVOKED, objects, attributes)


def token_created(actor: Actor, token: TokenRecord) -> AuditEvent:
    """The token's id and settings: never its text (shown once, to the caller) or hash."""
    attributes = [AuditAttribute("Token ID", token.id),
                  AuditAttribute("Token scopes", " ".join(token.scopes)),
                  AuditAttribute("Expiry", format_iso(token.expires_ms)
                             if token.expires_ms is not None else "never")]
    if token.allow_ips:
        attributes.append(AuditAttribute("Allowed IP ranges", " ".join(token.allow_ips)))
    if token.rate_requests and token.rate_minutes:
        attributes.append(AuditAttribute("Rate limit",
                                     f"{token.rate_requests}/{token.rate_minutes}m"))
    if token.description:
        attributes.append(AuditAttribute("Token description", token.description))
    return _change(actor, TOKEN_CREATED, [_user(token.user)], attributes)


def token_revoked(actor: Actor, token: TokenRecord) -> AuditEvent:
    return _change(actor, TOKEN_REVOKED, [_user(token.user)],
                   [AuditAttribute("Token ID", token.id)])

"""A realistic demo data set: a Bitbucket-like instance over a few weeks.

Projects, repositories, users and the everyday events of a code-hosting server, plus a few
suspicious episodes a security team would want to find: a burst of failed logins, a skipped
security hook, a user-permissions export, an audit configuration change and an admin-scoped
token. Deterministic for a seed, with stable uids, so loading it twice stores nothing twice.
The benchmarks use the same generator for their million-event stores.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from trailkeeper.governance import manage
from trailkeeper.governance.policy import Preset
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.model.timestamps import ms_to_datetime, now_ms
from trailkeeper.query.ast import In

SYSTEM_URL = "http://bitbucket.example.com"
NODES = ("8767044c-1b98-4d64-82db-ef29af8c3792", "2f1c9e40-5a7d-4b8e-9c61-0d3e8a7b5f12")
_BB = "bitbucket.service."

A = CoverageArea
L = CoverageLevel


@dataclass(frozen=True)
class _Kind:
    """One kind of event: its type, what it is about, and how often it happens."""

    type: AuditType
    about: str  # "repo", "project", "user", "group", "global", "self"
    weight: float


def _t(category: str, category_key: str, action: str, action_key: str | None,
       area: CoverageArea, level: CoverageLevel = L.BASE) -> AuditType:
    return AuditType(category, action, area, level, _BB + "audit.category." + category_key,
                     action_key)


_KINDS = [
    _Kind(_t("Authentication", "authentication", "User logged in",
             _BB + "user.audit.action.authenticationsuccess", A.SECURITY, L.FULL), "self", 30),
    _Kind(_t("Authentication", "authentication", "User login failed",
             _BB + "user.audit.action.authenticationfailure", A.SECURITY, L.ADVANCED), "self", 2),
    _Kind(_t("Repositories", "repositories", "Repository accessed by user",
             _BB + "repository.audit.action.repositoryaccessed", A.END_USER_ACTIVITY, L.FULL),
          "repo", 25),
    _Kind(_t("Repositories", "repositories", "Repository modified",
             _BB + "repository.audit.action.repositorymodified",
             A.LOCAL_CONFIG_AND_ADMINISTRATION), "repo", 4),
    _Kind(_t("Repositories", "repositories", "Repository created", None,
             A.LOCAL_CONFIG_AND_ADMINISTRATION), "repo", 1.5),
    _Kind(_t("Repositories", "repositories", "Repository deleted",
             _BB + "repository.audit.action.repositorydeleted",
             A.LOCAL_CONFIG_AND_ADMINISTRATION), "repo", 0.3),
    _Kind(_t("Pull requests", "pullrequests", "Pull request merged", None,
             A.END_USER_ACTIVITY, L.ADVANCED), "repo", 8),
    _Kind(_t("Projects", "projects", "Project settings changed",
             _BB + "project.audit.action.projectmodified", A.LOCAL_CONFIG_AND_ADMINISTRATION),
          "project", 1),
    _Kind(_t("Permissions", "permissions", "Repository permission granted",
             _BB + "user.audit.action.repositorypermissiongranted", A.PERMISSIONS), "repo", 2),
    _Kind(_t("Permissions", "permissions", "Repository permission revoked",
             _BB + "user.audit.action.repositorypermissionrevoked", A.PERMISSIONS), "repo", 0.8),
    _Kind(_t("Permissions", "permissions", "Project permission granted",
             _BB + "user.audit.action.projectpermissiongranted", A.PERMISSIONS), "project", 1),
    _Kind(_t("Users and groups", "usersandgroups", "User created",
             _BB + "user.audit.action.usercreated", A.USER_MANAGEMENT), "user", 0.5),
    _Kind(_t("Users and groups", "usersandgroups", "User added to user group",
             _BB + "user.audit.action.groupmembershipscreated.user", A.USER_MANAGEMENT),
          "group", 0.8),
    _Kind(_t("Users and groups", "usersandgroups", "Personal access token created",
             "bitbucket.access.tokens.audit.action.accesstokencreated.personal",
             A.USER_MANAGEMENT), "self", 0.6),
    _Kind(_t("Users and groups", "usersandgroups", "SSH access key created for personal key",
             "bitbucket.ssh.audit.action.sshkeycreated", A.USER_MANAGEMENT), "self", 0.4),
    _Kind(_t("Global administration", "globaladministration", "Mail server changed", None,
             A.GLOBAL_CONFIG_AND_ADMINISTRATION), "global", 0.05),
    _Kind(_t("Apps", "apps", "Plugin enabled", None, A.GLOBAL_CONFIG_AND_ADMINISTRATION),
          "global", 0.1),
    _Kind(AuditType("Auditing", "Audit Log search performed", A.AUDIT_LOG, L.BASE,
                    "atlassian.audit.event.category.audit",
                    "atlassian.audit.event.action.audit.search"), "global", 1),
]
_WEIGHTS = [k.weight for k in _KINDS]

_FIRST = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
          "ken", "liam", "maria", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent",
          "uma", "victor", "walter", "xena", "yusuf", "zoe")
_PROJECTS = (("PLAT", "Platform"), ("WEB", "Web"), ("MOB", "Mobile"), ("DATA", "Data"),
             ("SEC", "Security"), ("OPS", "Operations"), ("DOCS", "Documentation"),
             ("INFRA", "Infrastructure"))
_REPO_WORDS = ("api", "core", "ui", "sdk", "infra", "deploy", "docs", "tools", "auth", "billing",
               "search", "gateway")


@dataclass(frozen=True)
class _World:
    users: list[AuditAuthor]
    projects: list[AuditResource]
    repos: list[tuple[AuditResource, AuditResource]]  # (repository, its project)
    groups: list[AuditResource]


def _world(rng: random.Random, users: int) -> _World:
    people = [AuditAuthor("1", "admin", "NORMAL", f"{SYSTEM_URL}/users/admin")]
    for i in range(users):
        name = f"{_FIRST[i % len(_FIRST)]}{'' if i < len(_FIRST) else i // len(_FIRST)}"
        people.append(AuditAuthor(str(i + 2), name, "NORMAL", f"{SYSTEM_URL}/users/{name}"))
    projects, repos = [], []
    repo_id = 1
    for pid, (key, _title) in enumerate(_PROJECTS, start=1):
        project = AuditResource("PROJECT", key, str(pid), f"{SYSTEM_URL}/projects/{key}")
        projects.append(project)
        for word in rng.sample(_REPO_WORDS, rng.randint(3, 8)):
            slug = f"{key.lower()}-{word}"
            repos.append((AuditResource("REPOSITORY", slug, str(repo_id),
                                        f"{SYSTEM_URL}/projects/{key}/repos/{slug}"), project))
            repo_id += 1
    groups = [AuditResource("GROUP", g) for g in ("developers", "admins", "auditors", "release")]
    return _World(people, projects, repos, groups)


def demo_events(count: int = 5000, *, days: int = 21, end_ms: int | None = None,
                seed: int = 7, users: int = 40) -> Iterator[AuditEvent]:
    """``count`` everyday events over ``days`` days ending at ``end_ms``, then the episodes."""
    rng = random.Random(seed)
    world = _world(rng, users)
    end = end_ms if end_ms is not None else now_ms()
    start = end - days * 86_400_000
    step = (end - start) / max(count, 1)
    prefix = f"demo-{seed}-"
    for i in range(count):
        ts = int(start + i * step + rng.random() * step)
        yield _everyday(rng, world, rng.choices(_KINDS, _WEIGHTS)[0], ts, f"{prefix}{i}")
    yield from _episodes(world, end - 3 * 86_400_000, prefix)


def _common(rng: random.Random, author: AuditAuthor, ts: int) -> dict[str, object]:
    return {
        "author": author,
        "timestamp": ms_to_datetime(ts),
        "source": f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "method": rng.choice(("Browser", "Browser", "REST", "Git")),
        "system": SYSTEM_URL,
        "node": rng.choice(NODES),
    }


def _everyday(rng: random.Random, world: _World, kind: _Kind, ts: int, uid: str) -> AuditEvent:
    actor = rng.choice(world.users[1:]) if kind.about in ("self", "repo") else world.users[0]
    if kind.about == "repo" and rng.random() < 0.3:
        actor = world.users[0]
    objects: list[AuditResource] = []
    changed: list[ChangedValue] = []
    attributes: list[AuditAttribute] = []
    if kind.about == "repo":
        repo, project = rng.choice(world.repos)
        objects = [project, repo]
        if kind.type.action == "Repository modified":
            changed = [ChangedValue("Description", "Service " + repo.name,
                                    f"Service {repo.name} (v{rng.randint(2, 9)})")]
        elif kind.type.category == "Permissions":
            grantee = rng.choice(world.users[1:])
            objects.append(AuditResource("USER", grantee.name, grantee.id))
            changed = [ChangedValue("Permission", None,
                                    rng.choice(("REPO_READ", "REPO_WRITE", "REPO_ADMIN")))]
        elif kind.type.action == "Pull request merged":
            attributes = [AuditAttribute("pull request", str(rng.randint(1, 4000)))]
    elif kind.about == "project":
        project = rng.choice(world.projects)
        objects = [project]
        if kind.type.category == "Permissions":
            grantee = rng.choice(world.users[1:])
            objects.append(AuditResource("USER", grantee.name, grantee.id))
            changed = [ChangedValue("Permission", None, rng.choice(("PROJECT_READ",
                                                                    "PROJECT_ADMIN")))]
        else:
            changed = [ChangedValue("Default branch", "master", "main")]
    elif kind.about == "user":
        newcomer = rng.choice(world.users[1:])
        objects = [AuditResource("USER", newcomer.name, newcomer.id)]
    elif kind.about == "group":
        member = rng.choice(world.users[1:])
        objects = [rng.choice(world.groups), AuditResource("USER", member.name, member.id)]
    elif kind.about == "self":
        objects = [AuditResource("USER", actor.name, actor.id)]
        if kind.type.category == "Authentication":
            attributes = [AuditAttribute("Authentication method",
                                         rng.choice(("basic", "form", "token")))]
    elif kind.type.category == "Auditing":
        attributes = [AuditAttribute("Query", "actions=User created"),
                      AuditAttribute("Results returned", str(rng.randint(0, 200)))]
    return AuditEvent(type=kind.type, affected_objects=objects, changed_values=changed,
                      extra_attributes=attributes, uid=uid,
                      **_common(rng, actor, ts))  # type: ignore[arg-type]


def _episodes(world: _World, at: int, prefix: str) -> Iterator[AuditEvent]:
    """The suspicious activity, at fixed offsets from ``at``."""
    rng = random.Random(99)
    victim = world.users[5]
    failed = _KINDS[1].type
    for n in range(25):  # many failed logins for one user from one address
        # Authored by the user whose password was tried, as Bitbucket and our own
        # "User login failed" record it (the built-in rule groups by author.name).
        yield AuditEvent(type=failed, author=victim,
                         timestamp=ms_to_datetime(at + n * 7_000), source="203.0.113.66",
                         method="Browser", system=SYSTEM_URL, node=NODES[0],
                         affected_objects=[AuditResource("USER", victim.name, victim.id)],
                         extra_attributes=[AuditAttribute("Authentication method", "form")],
                         uid=f"{prefix}failed-login-{n}")
    insider = world.users[9]
    repo, project = world.repos[3]
    for n in range(3):  # the Soteri security hook skipped with the magic commit message
        yield AuditEvent(
            type=AuditType("Soteri Security for Bitbucket", "Security hook skipped"),
            affected_objects=[project, repo],
            extra_attributes=[AuditAttribute("commit message",
                                             "hotfix skip-soteri-security-check")],
            uid=f"{prefix}hook-skipped-{n}",
            **_common(rng, insider, at + 3_600_000 + n * 600_000))  # type: ignore[arg-type]
    yield AuditEvent(
        type=AuditType("Users and groups", "User permissions exported", A.USER_MANAGEMENT,
                       L.ADVANCED),
        uid=f"{prefix}permissions-export",
        **_common(rng, insider, at + 7_200_000))  # type: ignore[arg-type]
    yield AuditEvent(
        type=AuditType("Auditing", "Audit Log configuration updated", A.AUDIT_LOG, L.BASE,
                       "atlassian.audit.event.category.audit",
                       "atlassian.audit.event.action.audit.config.updated"),
        uid=f"{prefix}audit-config",
        changed_values=[ChangedValue("Coverage level", "security : full", "security : off",
                                     "atlassian.audit.event.change.coverage.level")],
        **_common(rng, world.users[0], at + 7_300_000))  # type: ignore[arg-type]
    yield AuditEvent(
        type=_KINDS[13].type, uid=f"{prefix}admin-token",
        affected_objects=[AuditResource("USER", insider.name, insider.id)],
        extra_attributes=[AuditAttribute("Permissions", "ADMIN"),
                          AuditAttribute("Token name", "automation")],
        **_common(rng, insider, at + 7_400_000))  # type: ignore[arg-type]


def load_demo(service: AuditService, count: int = 5000, seed: int = 7) -> int:
    """Store the demo set through the durable path, once; returns how many events were new."""
    if service.count(In("uid", (f"demo-{seed}-0",))):
        return 0  # already loaded (its timestamps were relative to that first load)
    if service.governance.reload().version == 0:
        # The demo shows every kind of event (sign-ins are FULL, failures ADVANCED), which
        # the default coverage (BASE) would leave out: a never-configured store gets the
        # DETAILED policy, recorded as a configuration change like any other.
        manage.update(service, manage.preset_values(Preset.DETAILED), AuditAuthor.SYSTEM,
                      method="Demo")
    added = 0
    batch: list[AuditEvent] = []
    for event in demo_events(count, seed=seed):
        batch.append(event)
        if len(batch) == 1000:
            added += service.submit(batch).created
            batch = []
    if batch:
        added += service.submit(batch).created
    return added

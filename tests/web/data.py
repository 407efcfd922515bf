"""Events the web UI tests store, through the service's durable path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import ALICE, BOB, OTHER_PROJECT, OTHER_REPO, PROJECT, REPO, event, rich_event
from trailkeeper.alerts.model import NewAlert
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
from trailkeeper.query.ast import MatchAll

SCRIPT = "<script>alert('pwned-1')</script>"
IMG = '"><img src=x onerror="alert(\'pwned-2\')">'
JS_URI = "javascript:alert('pwned-3')"
RLO = "\u202e"  # right-to-left override: "exe.txt" would read "txt.exe"
LINE_SEPARATOR = "\u2028"


def store(service: AuditService, *events: AuditEvent) -> list[int]:
    """Store events durably (as HTTP ingest does); their ids."""
    return [i for i in service.submit(list(events)).ids if i]


def sample(service: AuditService) -> dict[str, list[int]]:
    """A small log: repositories of project PRJ (alice) and OPS (bob), a permission change,
    a rich event with a changed value and an attribute, and two events of the last hour."""
    ids: dict[str, list[int]] = {}
    ids["prj"] = store(service, *(event(minutes=i, author=ALICE, objects=(PROJECT, REPO))
                                  for i in range(6)))
    ids["ops"] = store(service, *(event("Repository deleted", minutes=10 + i, author=BOB,
                                        objects=(OTHER_PROJECT, OTHER_REPO)) for i in range(4)))
    ids["permission"] = store(service, event(
        "Repository permission granted", category="Permissions", minutes=20, author=BOB,
        objects=(OTHER_PROJECT, OTHER_REPO), area=CoverageArea.PERMISSIONS,
        changed_values=(ChangedValue("Permission", None, "REPO_WRITE"),)))
    ids["rich"] = store(service, rich_event(minutes=30))
    now = datetime.now(UTC)
    ids["recent"] = store(service, *(AuditEvent(
        type=AuditType("Repositories", "Repository created",
                       CoverageArea.LOCAL_CONFIG_AND_ADMINISTRATION),
        author=ALICE, timestamp=now - timedelta(minutes=20 + i),
        affected_objects=(PROJECT, AuditResource("REPOSITORY", "fresh-repo", "9")))
        for i in range(2)))
    return ids


def many(service: AuditService, count: int) -> list[int]:
    """``count`` events a minute apart, in batches."""
    ids: list[int] = []
    for start in range(0, count, 500):
        ids += store(service, *(event(minutes=i, uid=f"many-{i}")
                                for i in range(start, min(count, start + 500))))
    return ids


def hostile(service: AuditService) -> int:
    """An event whose every text field tries to be markup, script, a link or a trick."""
    evil = AuditEvent(
        type=AuditType(f"Cat {SCRIPT}", f"Act {IMG}", CoverageArea.SECURITY, CoverageLevel.BASE,
                       category_i18n_key="evil.key", action_i18n_key="evil.action"),
        author=AuditAuthor("666", f"mallory {SCRIPT}", "NORMAL", JS_URI),
        timestamp=datetime(2024, 3, 2, tzinfo=UTC),
        affected_objects=(AuditResource("REPOSITORY", f"invoice{RLO}txt.exe", "66", JS_URI),
                          AuditResource("PROJECT", IMG, "67")),
        changed_values=(ChangedValue(f"Key {IMG}", f"old{LINE_SEPARATOR}{SCRIPT}",
                                     f"new {JS_URI}"),),
        extra_attributes=(AuditAttribute(f"Attr {SCRIPT}", f"{IMG}{LINE_SEPARATOR}end"),),
        source="10.6.6.6", method=f"M {SCRIPT}", system=JS_URI, node=f"n{RLO}1",
    )
    return store(service, evil)[0]


def raise_alert(service: AuditService, event_ids: list[int], title: str = "Suspicious"
                ) -> int:
    """Record an alert naming ``event_ids``, as live detection would."""
    last = max(event_ids)
    found = service.storage.search(MatchAll(), limit=1)
    stamp = found.events[0].timestamp_ms if found.events else 0
    created = service.storage.record_alerts(
        [NewAlert(rule_id="rule-1", rule_title=title, level="high", timestamp_ms=stamp,
                  trigger_id=last, event_ids=tuple(event_ids))],
        throttle_ms=0, now_ms=stamp)
    return created[0]

"""The settings page (``/audit/settings``): coverage per area, the audit policy preset, the
denylist, database retention and log-file retention.

Admins and sysadmins see the settings; only sysadmins change them, as on the REST API. A
change is confirmed first: the page lists each setting's old and new value and applies them
only when the sysadmin confirms. Bodies are read by the same functions as the REST API's
(`trailkeeper.governance.manage`), so the same values are refused with the same words, and
applied through `manage.update`, which records "Audit Log configuration updated" with the
from/to values whatever the coverage says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from trailkeeper.auth.audit_events import BROWSER
from trailkeeper.auth.principals import Principal, Role
from trailkeeper.errors import NotFoundError, PermissionDeniedError
from trailkeeper.governance import manage
from trailkeeper.governance.changes import CONFIG_UPDATED, changed_values
from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.governance.policy import PRESETS, parse_preset, preset_of
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import ChangedValue
from trailkeeper.web.render import base_path, redirect
from trailkeeper.web.requests import Form, checked_form, client, signed_in, web
from trailkeeper.web.sessions import Visitor

SECTIONS = {
    "coverage": "Coverage",
    "policy": "Audit policy",
    "denylist": "Denylist",
    "retention": "Database retention",
    "file-retention": "Log file retention",
}
CONFIG_LEVELS = tuple(level.value.lower() for level in CoverageLevel)


def may_view(principal: Principal) -> bool:
    return principal.role in (Role.SYSADMIN, Role.ADMIN)


def may_change(principal: Principal) -> bool:
    return principal.role is Role.SYSADMIN


def _whole(form: Form, name: str, label: str) -> int:
    text = form.get(name).strip() or "0"
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 15:
        raise manage.ConfigurationChangeError(f"{label} must be a whole number, not {text!r}")
    return int(text)


def _coverage(form: Form, config: GovernanceConfig) -> dict[str, str]:
    return manage.coverage_values({"levelByArea": {
        area.kebab: form.get(f"level.{area.kebab}") or config.coverage[area].value.lower()
        for area in CoverageArea}})


def _policy(form: Form, config: GovernanceConfig) -> dict[str, str]:
    try:
        preset = parse_preset(form.get("preset"))
    except ValueError as exc:
        raise manage.ConfigurationChangeError(str(exc)) from None
    return manage.preset_values(preset)


def _denylist(form: Form, config: GovernanceConfig) -> dict[str, str]:
    added = [line.strip() for line in form.get("add").splitlines() if line.strip()]
    return manage.denylist_edit({"add": added, "delete": form.all("remove")}, config.denylist)


def _retention(form: Form, config: GovernanceConfig) -> dict[str, str]:
    period = {part: _whole(form, part, f"Retention {part}")
              for part in ("years", "months", "days")}
    return manage.retention_values({"period": period,
                                    "maxRows": _whole(form, "max_rows", "The row cap")})


def _file_retention(form: Form, config: GovernanceConfig) -> dict[str, str]:
    return manage.file_retention_values(
        {"maxFileCount": _whole(form, "max_files", "The number of log files")})


READERS: dict[str, Callable[[Form, GovernanceConfig], dict[str, str]]] = {
    "coverage": _coverage, "policy": _policy, "denylist": _denylist,
    "retention": _retention, "file-retention": _file_retention,
}


@dataclass(frozen=True, slots=True)
class Preview:
    """What a change would do: each setting's old and new value."""

    section: str
    changes: list[ChangedValue]
    fields: list[tuple[str, str]]  # the form, to send again with the confirmation


def preview(service: AuditService, section: str, form: Form) -> Preview:
    """The changes the form asks for, against the configuration stored now (raises
    `manage.ConfigurationChangeError` naming what is wrong)."""
    current = service.governance.reload()
    values = READERS[section](form, current)
    _, stored = service.storage.load_settings()
    after = GovernanceConfig.from_settings({**stored, **values})
    fields = [(k, v) for k, v in form.items if k not in ("csrf", "confirm")]
    return Preview(section, changed_values(current, after), fields)


def _context(service: AuditService, principal: Principal) -> dict[str, Any]:
    config = service.governance.reload()
    return {"config": config, "preset": preset_of(config), "presets": list(PRESETS),
            "areas": list(CoverageArea), "levels": CONFIG_LEVELS, "sections": SECTIONS,
            "editable": may_change(principal), "config_action": CONFIG_UPDATED}


def _visible(visitor: Visitor) -> None:
    if not may_view(visitor.principal):
        raise PermissionDeniedError("Only administrators and system administrators may see "
                                    "the audit settings")


async def settings_page(request: Request) -> Response:
    visitor = await signed_in(request)
    _visible(visitor)
    parts = web(request)
    context = await run_in_threadpool(_context, parts.service, visitor.principal)
    saved = request.query_params.get("saved", "")
    return parts.pages.render(request, "settings.html",
                              saved=saved if saved in SECTIONS or saved == "none" else None,
                              problem=None, problem_section=None, **context)


async def change(request: Request) -> Response:
    """First the confirmation page listing the changes, then (``confirm=yes``) the change."""
    visitor = await signed_in(request)
    _visible(visitor)
    section = request.path_params["section"]
    if section not in READERS:
        raise NotFoundError(f"No settings section {section!r}")
    form = await checked_form(request, visitor)
    if not may_change(visitor.principal):
        raise PermissionDeniedError("Only system administrators may change the audit "
                                    "settings")
    parts = web(request)
    service = parts.service
    try:
        planned = await run_in_threadpool(preview, service, section, form)
    except manage.ConfigurationChangeError as exc:
        context = await run_in_threadpool(_context, service, visitor.principal)
        return parts.pages.render(request, "settings.html", status=400, saved=None,
                                  problem=exc.message, problem_section=section, **context)
    base = base_path(request)
    if not planned.changes:
        return redirect(f"{base}/settings?saved=none#{section}")
    if form.get("confirm") != "yes":
        return parts.pages.render(request, "confirm.html", preview=planned,
                                  title=SECTIONS[section])
    values = READERS[section](form, service.governance.config)
    await run_in_threadpool(manage.update, service, values, visitor.principal.as_author(),
                            source=client(request), method=BROWSER)
    return redirect(f"{base}/settings?saved={section}#{section}")

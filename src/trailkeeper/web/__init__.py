"""The web UI: the audit log page, settings and alerts, served at ``/audit``."""

from trailkeeper.web.app import build_web

__all__ = ["build_web"]

"""Imports and tails that go to a server pass its whole audit policy, like any producer:
the servers of these tests record everything (DETAILED), so every sample event is stored
whatever its level, except the server's own records of the requests (denied), which would
otherwise mix with the imported events the tests count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trailkeeper.governance.config import DENYLIST, dumps
from trailkeeper.governance.manage import preset_values
from trailkeeper.governance.policy import Preset
from trailkeeper.ingest.service import AuditService


@pytest.fixture
def service(db_url: str) -> Iterator[AuditService]:
    svc = AuditService.open(db_url)
    own = ["User authenticated", "Audit Log search performed", "Audit Log exported"]
    svc.storage.put_settings(preset_values(Preset.DETAILED) | {DENYLIST: dumps(own)})
    svc.governance.reload()
    try:
        yield svc
    finally:
        svc.close()

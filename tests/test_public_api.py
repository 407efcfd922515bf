"""The public surface: `trailkeeper.__all__` names exactly what the package exports."""

from __future__ import annotations

import trailkeeper


def test_all_lists_importable_public_names() -> None:
    for name in trailkeeper.__all__:
        assert getattr(trailkeeper, name) is not None
    public = {n for n in vars(trailkeeper) if not n.startswith("_") and n[0].isupper()}
    assert public == set(trailkeeper.__all__)


def test_design_contract_names_are_exported() -> None:
    expected = {"AuditService", "AuditEvent", "AuditType", "AuditResource", "ChangedValue",
                "AuditAttribute", "CoverageArea", "CoverageLevel", "AuditQuery"}
    assert expected <= set(trailkeeper.__all__)

"""The configuration a node works with, kept current from the store.

Every node polls the settings version once a second (one indexed ``max()``), so a change
made on any node applies everywhere within about a second; the node that made a change
reloads at once. Readers take `policy` without a lock: it is replaced, never mutated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.governance.policy import Policy
from trailkeeper.storage.base import Storage

log = logging.getLogger("trailkeeper.governance")

POLL_SECONDS = 1.0


class LiveGovernance:
    """The current `Policy` of one store, refreshed in the background."""

    def __init__(self, storage: Storage, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._storage = storage
        self._poll_seconds = poll_seconds
        self._reload_lock = threading.Lock()
        self.policy = Policy(self._load())
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> GovernanceConfig:
        return self.policy.config

    def _load(self) -> GovernanceConfig:
        version, settings = self._storage.load_settings()
        return GovernanceConfig.from_settings(settings, version)

    def reload(self) -> GovernanceConfig:
        """Read the configuration from the store now."""
        with self._reload_lock:
            config = self._load()
            if config.version != self.policy.config.version:
                log.info("governance configuration version %d applied", config.version)
            self.policy = Policy(config)
            return config

    def refresh(self) -> None:
        """Reload if the stored version moved (the cheap check of the poller)."""
        if self._storage.settings_version() != self.policy.config.version:
            self.reload()

    def change(self, values: Mapping[str, str]) -> tuple[GovernanceConfig, GovernanceConfig]:
        """Store new settings (already validated JSON text); (before, after)."""
        before = self.reload()
        self._storage.put_settings(values)
        return before, self.reload()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="trailkeeper-governance",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _poll(self) -> None:
        while not self._stopping.wait(self._poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # a store hiccup must not end the poller
                log.warning("could not check the governance configuration: %s", exc)

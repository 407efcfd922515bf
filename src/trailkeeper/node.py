"""The background work of one serving node, beside the HTTP API.

- the Atlassian-format audit log files (`FileSink`, one writer per node: with several
  worker processes the others stand by), woken after every commit;
- the retention scheduler (every node checks; the store's lease lets one run per cluster);
- the verifiable log (`IntegrityConsumer`): the Merkle tree over every committed event and
  its signed checkpoints, one builder per cluster (a lease);
- detection (`DetectionConsumer`): the Sigma rules on every committed event, recording
  alerts; the alert actions (`Dispatcher`: e-mail, webhook, syslog) that tell people; the
  SIEM forwarders (syslog, Splunk HEC). Each holds a cluster-wide lease, so one process in
  the cluster runs each, whichever node it is on; they come from ``trailkeeper.toml``
  (`trailkeeper.settingsfile`).

The governance configuration feeds the first two live: a changed ``maxFileCount`` or
retention period applies at the next file or run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from trailkeeper.alerts.dispatch import Dispatcher
from trailkeeper.consumers.filesink import FileSink
from trailkeeper.consumers.lease import Lease
from trailkeeper.consumers.logfiles import audit_log_dir
from trailkeeper.detection.detector import Detector
from trailkeeper.detection.live import CONSUMER as DETECTION
from trailkeeper.detection.live import DetectionConsumer
from trailkeeper.detection.model import LoadedCorrelation, LoadedRule, RuleSet
from trailkeeper.detection.rules import BUILTIN_DIR, load_rules
from trailkeeper.forwarding.forwarder import Forwarder
from trailkeeper.governance.retention import RetentionJob, RetentionScheduler
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity.consumer import CONSUMER as INTEGRITY
from trailkeeper.integrity.consumer import IntegrityConsumer
from trailkeeper.model.event import AuditEvent
from trailkeeper.settingsfile import ActionConfig, FileSettings

log = logging.getLogger("trailkeeper.node")


def node_name() -> str:
    """This node's name: ``TRAILKEEPER_NODE``, or the host name."""
    return os.environ.get("TRAILKEEPER_NODE") or socket.gethostname()


def checkpoint_key_path(home: Path) -> Path:
    """Where a node keeps the private key that signs checkpoints (``.pub`` beside it)."""
    return home / "integrity" / "checkpoint.key"


def rule_sources(home: Path, settings: FileSettings,
                 extra: Sequence[Path] = ()) -> list[Path]:
    """Where rules load from: ``$TRAILKEEPER_HOME/rules`` (when it exists), the
    directories of ``[detection] rules``, and ``serve --rules``."""
    own = home / "rules"
    return [*([own] if own.is_dir() else []), *settings.detection.rules, *extra]


def load_node_rules(home: Path, settings: FileSettings,
                    extra: Sequence[Path] = ()) -> RuleSet:
    """The node's rule set, its problems logged (a broken rule is left out, not fatal)."""
    detection = settings.detection
    ruleset = load_rules(rule_sources(home, settings, extra),
                         builtin_dir=BUILTIN_DIR if detection.builtin else None,
                         disabled=detection.disabled)
    for problem in ruleset.problems:
        log.log(logging.ERROR if problem.severity == "error" else logging.WARNING,
                "rule %s%s: %s", problem.path or "", f" ({problem.rule})" if problem.rule
                else "", problem.message)
    return ruleset


def with_rule_ids(action: ActionConfig, ruleset: RuleSet | None) -> ActionConfig:
    """The action with the ids of the rules its ``rules`` name by their Sigma ``name``
    added (alerts carry a rule's id and title; the name is what people write)."""
    if ruleset is None or not action.rules:
        return action
    everything: list[LoadedRule | LoadedCorrelation] = [*ruleset.rules, *ruleset.correlations]
    named = {r.name.casefold(): r.id for r in everything if r.name}
    ids = tuple(named[n.casefold()] for n in action.rules if n.casefold() in named)
    return action.model_copy(update={"rules": action.rules + ids}) if ids else action


class NodeJobs:
    """Starts and stops a node's file sink, retention scheduler, detection, alert actions
    and forwarders."""

    def __init__(self, service: AuditService, home: Path, *, node: str | None = None,
                 file_sink: bool = True, retention: bool = True,
                 settings: FileSettings | None = None, rules: Sequence[Path] = ()) -> None:
        self.service = service
        self.node = node or node_name()
        settings = settings or FileSettings()
        governance = service.governance
        self.file_sink = FileSink(
            service.storage, audit_log_dir(home), self.node,
            max_file_count=lambda: governance.config.max_file_count,
            metrics=service.metrics) if file_sink else None
        self.retention = RetentionScheduler(RetentionJob(
            service.storage, period=lambda: governance.config.retention,
            max_rows=lambda: governance.config.max_rows, record=self._record,
            metrics=service.metrics, node=self.node)) if retention else None
        storage, metrics = service.storage, service.metrics
        ruleset = load_node_rules(home, settings, rules) if settings.detection.enabled \
            else None
        routes = [with_rule_ids(action, ruleset) for action in settings.action]
        self.dispatcher = Dispatcher(
            storage, [(route, route.build()) for route in routes],
            metrics=metrics, public_url=settings.public_url) if routes else None
        self.detection = None
        if ruleset is not None:
            self.detection = DetectionConsumer(
                storage, Detector(ruleset), throttle_ms=settings.detection.throttle_ms,
                metrics=metrics, lease=Lease(storage, DETECTION),
                on_alerts=self.dispatcher.notify if self.dispatcher else None)
        integrity = settings.integrity
        self.integrity = IntegrityConsumer(
            storage, integrity.key or checkpoint_key_path(home), origin=integrity.origin,
            record_event=self._record, node=self.node,
            every_events=integrity.checkpoint_events,
            every_s=integrity.checkpoint_interval_s, metrics=metrics,
            lease=Lease(storage, INTEGRITY)) if integrity.enabled else None
        self.forwarders: list[Forwarder] = [
            forward.build(storage, metrics, node=self.node) for forward in settings.forward]

    def _record(self, event: AuditEvent) -> None:
        # The records of a retention run and of a checkpoint are written whatever the
        # coverage (they are evidence), and durably before the job moves on.
        self.service.submit([event], screen=False)

    def start(self) -> None:
        if self.file_sink is not None:
            self.file_sink.start()
            self.service.after_commit(self.file_sink.notify)
        if self.retention is not None:
            self.retention.start()
        if self.integrity is not None:
            self.service.digest_leaves()
            self.integrity.start()
            self.service.after_commit(self.integrity.notify)
        if self.dispatcher is not None:
            self.dispatcher.start()
        if self.detection is not None:
            self.detection.start()
            self.service.after_commit(self.detection.notify)
        for forwarder in self.forwarders:
            forwarder.start()
            self.service.after_commit(forwarder.notify)
        log.info("node %s: audit log files %s, retention %s, integrity %s, detection %s, "
                 "%d alert action(s), %d forwarder(s)", self.node, _on(self.file_sink),
                 _on(self.retention), _on(self.integrity), _on(self.detection),
                 len(self.dispatcher.actions) if self.dispatcher else 0, len(self.forwarders))

    def stop(self) -> None:
        """Call after the service's queue has drained, so the consumers get its last
        events; detection stops before the actions, so its last alerts are sent."""
        if self.retention is not None:
            self.retention.stop()
        # The last checkpoint's record is an event: the consumers stop after it, so that the
        # audit log files and the SIEMs get it too.
        if self.integrity is not None:
            self.integrity.stop()
        for forwarder in self.forwarders:
            forwarder.stop()
        if self.detection is not None:
            self.detection.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.file_sink is not None:
            self.file_sink.stop()


def _on(job: object) -> str:
    return "off" if job is None else "on"

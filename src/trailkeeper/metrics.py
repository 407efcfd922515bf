"""Prometheus metrics. Each service owns a registry, so several can live in one process.

With several worker processes (``serve --workers N``) the values live in files under
``PROMETHEUS_MULTIPROC_DIR``, as prometheus-client's multiprocess mode prescribes, and
`/metrics` sums them over the workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter(
            "trailkeeper_events_received", "Events accepted for storage, by path",
            ["path"], registry=r)
        self.events_stored = Counter(
            "trailkeeper_events_stored", "Events durably committed (new, not replays)",
            registry=r)
        self.events_dropped = Counter(
            "trailkeeper_events_dropped",
            "In-process events discarded because the queue overflowed", registry=r)
        self.events_rejected = Counter(
            "trailkeeper_events_rejected", "Events refused as invalid or conflicting, by reason",
            ["reason"], registry=r)
        self.events_not_recorded = Counter(
            "trailkeeper_events_not_recorded",
            "Events the audit policy left out, by reason (denylist, coverage)",
            ["reason"], registry=r)
        self.queue_depth = Gauge(
            "trailkeeper_queue_depth", "In-process events waiting to be written", registry=r,
            multiprocess_mode="livesum")
        self.commit_seconds = Histogram(
            "trailkeeper_commit_seconds", "Duration of one group commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r)
        self.commit_events = Histogram(
            "trailkeeper_commit_events", "Events per group commit",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000), registry=r)
        self.request_seconds = Histogram(
            "trailkeeper_http_request_seconds", "HTTP request latency",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r)
        # Consumers of the committed log (file sink, later forwarders and detection).
        self.consumer_lag = Gauge(
            "trailkeeper_consumer_lag_events",
            "Committed events a consumer has not delivered yet, by consumer",
            ["consumer"], registry=r, multiprocess_mode="livemax")
        self.file_sink_lines = Counter(
            "trailkeeper_file_sink_lines", "Lines written to the Atlassian-format audit log files",
            registry=r)
        # SIEM forwarders (forwarding/forwarder.py).
        self.forwarded_events = Counter(
            "trailkeeper_forwarded_events", "Events a SIEM forwarder delivered, by forwarder",
            ["forwarder"], registry=r)
        self.forward_failures = Counter(
            "trailkeeper_forward_failures",
            "Batches a SIEM forwarder failed to deliver (each is sent again), by forwarder",
            ["forwarder"], registry=r)
        self.forward_truncated = Counter(
            "trailkeeper_forward_truncated",
            "Syslog messages cut to fit a UDP datagram, by forwarder", ["forwarder"],
            registry=r)
        # Alert actions (alerts/dispatch.py); their lag is consumer_lag
        # {consumer="alert-action:<name>"}, in alerts.
        self.alert_deliveries = Counter(
            "trailkeeper_alert_deliveries",
            "Alerts handled by an action, by outcome (delivered; rejected: a permanent "
            "failure; failed: given up after the last retry)",
            ["action", "outcome"], registry=r)
        self.alert_delivery_retries = Counter(
            "trailkeeper_alert_delivery_retries",
            "Delivery attempts that failed and will be retried, by action",
            ["action"], registry=r)
        # Database retention (governance/retention.py).
        self.events_deleted = Counter(
            "trailkeeper_events_deleted",
            "Events removed by database retention, by reason (age, row_limit)",
            ["reason"], registry=r)
        # Detection (detection/live.py).
        self.detection_events = Counter(
            "trailkeeper_detection_events", "Committed events the rules were run on",
            registry=r)
        self.alert_matches = Counter(
            "trailkeeper_alert_matches",
            "Rule matches that became or joined an alert, by level", ["level"], registry=r)
        # The verifiable log (integrity/consumer.py); its lag is consumer_lag
        # {consumer="integrity"}: events not yet in the Merkle tree.
        self.merkle_leaves = Counter(
            "trailkeeper_merkle_leaves", "Events added to the Merkle tree", registry=r)
        self.merkle_leaves_stored_digest = Counter(
            "trailkeeper_merkle_leaves_stored_digest",
            "Events added to the Merkle tree by the leaf digest their writer stored (the"
            " others' are derived from their documents)", registry=r)
        self.merkle_build_cpu = Counter(
            "trailkeeper_merkle_build_cpu_seconds",
            "CPU time the tree's builder spent reading, hashing and saving (its thread's)",
            registry=r)
        self.checkpoints_signed = Counter(
            "trailkeeper_checkpoints_signed", "Signed checkpoints of the Merkle tree",
            registry=r)
        self.checkpoint_size = Gauge(
            "trailkeeper_checkpoint_tree_size", "Events covered by the latest checkpoint",
            registry=r, multiprocess_mode="livemax")
        self.events_dropped.inc(0)
        self.events_stored.inc(0)

    def render(self) -> bytes:
        """The exposition text: this registry, or every worker's when there are several."""
        if os.environ.get(MULTIPROCESS_ENV):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)


def release_process() -> None:
    """Forget this worker's live gauges when it stops (multiprocess mode only)."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

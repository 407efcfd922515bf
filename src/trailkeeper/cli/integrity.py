"""``trailkeeper integrity``: the signing key, the tree's state, a checkpoint now
(``trailkeeper verify`` is in `trailkeeper.cli.verify`)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from trailkeeper.cli.options import existing_store, resolve_store, store_options
from trailkeeper.cli.verify import public_key_path
from trailkeeper.consumers.lease import Lease
from trailkeeper.errors import StateError
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity.consumer import CONSUMER, IntegrityConsumer
from trailkeeper.integrity.keys import read_verifier_key_file
from trailkeeper.integrity.proofs import tree_size
from trailkeeper.node import checkpoint_key_path, node_name
from trailkeeper.settingsfile import load_file_settings
from trailkeeper.storage import open_storage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def integrity() -> None:
    """The verifiable log: signing key, Merkle tree, checkpoints."""


@integrity.command("key")
@store_options
def key(home: Path | None, db_url: str | None) -> None:
    """Print the public key that verifies this node's checkpoints (C2SP verifier key).

    Give it to auditors and to ``trailkeeper verify --key``; it is also in
    $TRAILKEEPER_HOME/integrity/checkpoint.key.pub.
    """
    home_dir, _ = resolve_store(home, db_url)
    pub = public_key_path(home_dir)
    if not pub.is_file():
        raise click.UsageError(f"no signing key yet at {pub}: it is made when the server "
                               "first signs a checkpoint (or by `trailkeeper integrity "
                               "checkpoint`)")
    click.echo(read_verifier_key_file(pub).key_string)


@integrity.command("status")
@store_options
def status(home: Path | None, db_url: str | None) -> None:
    """How far the tree has come and the latest checkpoint."""
    _, url = resolve_store(home, db_url)
    storage = open_storage(existing_store(url))
    try:
        size, last_id = tree_size(storage)
        latest = storage.checkpoint()
        body = {"tree_size": size, "last_event_id": last_id,
                "lag_events": max(0, storage.max_id() - last_id),
                "first_leaf_tile": storage.merkle_first_leaf_tile(),
                "latest_checkpoint": None if latest is None else {
                    "size": latest.size, "root": latest.root.hex(), "origin": latest.origin,
                    "last_event_id": latest.last_id, "created_ms": latest.created_ms},
                "keys": storage.signing_keys()}
    finally:
        storage.close()
    click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


@integrity.command("checkpoint")
@store_options
def checkpoint(home: Path | None, db_url: str | None) -> None:
    """Hash every stored event into the tree and sign a checkpoint now.

    For a store no server is running on (a server signs by itself every 60 s).
    """
    home_dir, url = resolve_store(home, db_url)
    settings = load_file_settings(home_dir).integrity
    with AuditService.open(existing_store(url)) as service:
        lease = Lease(service.storage, CONSUMER)
        if not lease.hold():
            raise StateError("a server holds the integrity lease and builds the tree; it "
                             "signs a checkpoint within its interval")
        builder = IntegrityConsumer(
            service.storage, settings.key or checkpoint_key_path(home_dir),
            origin=settings.origin, node=node_name(),
            record_event=lambda event: service.submit([event], screen=False))
        try:
            builder.drain(checkpoint=True)
        finally:
            lease.release()
        latest = builder.latest
    if latest is None:
        click.echo("The store holds no events: nothing to sign.")
        return
    click.echo(f"Checkpoint of {latest.size:,} events signed; root {latest.root.hex()}")

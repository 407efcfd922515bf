"""Inclusion and consistency proofs from a Merkle tree of 10,000,000 leaves (issue 7).

Hashing ten million real events through the consumer would take most of an hour, so the
tree is written directly: `--leaves` leaf records of small synthetic canonical bytes
(``leaf_record(id, ts, b'{"id":…}')``, ids 1…n, one millisecond apart) are appended with
`TreeBuilder`, and every `--checkpoint-every` (10,000) leaves the changed tiles are saved with
the position and a signed checkpoint by `Storage.merkle_save`, as `IntegrityConsumer` does.

Then, each over `--calls` random events or sizes, each proof checked after it is timed:

- ``inclusion``: `proofs.inclusion(storage, id)` (tiles read through the store every call)
  on a store connection opened after the build, first for ids never asked before
  (``cold``: the OS has the file cached, the store's own caches do not have these tiles)
  then the same ids again (``warm``); ``inclusion_breakdown`` times its parts.
- ``consistency_random`` (random old < new <= the latest checkpoint) and
  ``consistency_to_latest`` (random old, new = the latest signed size, what a monitor asks).
- ``http_inclusion``: ``GET /api/v1/events/{id}/proof`` from `trailkeeper serve` on the same
  store. The endpoint needs the event row: `--http-events` real demo events are inserted at
  random ids of the tree (the id sequence set just before each), so their leaves are the
  synthetic ones (the endpoint does not compare them; a verifier would) but the work is the
  real one: the visibility search, the leaf's tile and the path. ``http_consistency``: ``GET
  /api/v1/checkpoints/consistency?from=``.

Target: an inclusion proof at 10,000,000 events <= 10 ms.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
from benchlib import (
    Server,
    emit,
    fresh_store,
    latency_ms,
    log,
    machine,
    parser,
    prime_auth,
    scratch_dir,
    target,
)

from trailkeeper.demo import demo_events
from trailkeeper.integrity import merkle, proofs
from trailkeeper.integrity.canonical import LeafRecord, leaf_record
from trailkeeper.integrity.keys import Signer, load_or_create_signer
from trailkeeper.integrity.note import signed_checkpoint, verify_checkpoint
from trailkeeper.integrity.tree import TreeBuilder
from trailkeeper.model.event import AuditAuthor
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import AppendResult, Storage
from trailkeeper.storage.merkle import CheckpointRecord
from trailkeeper.storage.rows import Batch, encode

TARGET_MS = 10.0
ORIGIN = "bench.trailkeeper.example/integrity-proofs"
BASE_TS = 1_717_200_000_000 - 10_000_000_000  # leaves 1 ms apart, ending near 2024-06-01


# -- building ----------------------------------------------------------------------------


def build_tree(storage: Storage, leaves: int, every: int, signer: Signer) -> dict[str, Any]:
    """Write a tree of ``leaves`` synthetic leaves as the consumer would: tiles, position and
    a signed checkpoint every ``every`` leaves, in one transaction each."""
    tree = TreeBuilder()
    expected: str | None = None
    hash_s = save_s = 0.0
    began = time.perf_counter()
    for start in range(1, leaves + 1, every):
        t0 = time.perf_counter()
        end = min(start + every, leaves + 1)
        append = tree.append
        for event_id in range(start, end):
            append(leaf_record(event_id, BASE_TS + event_id, b'{"id":%d}' % event_id))
        size, root = tree.size, tree.root()
        checkpoint = CheckpointRecord(
            size=size, root=root, last_id=end - 1, created_ms=BASE_TS + end - 1,
            origin=ORIGIN, note=signed_checkpoint(ORIGIN, size, root, signer),
            compact_range=tuple(tree.compact_range()))
        tiles = tree.take_dirty()
        state = orjson.dumps({"id": end - 1, "size": size}).decode()
        t1 = time.perf_counter()
        if not storage.merkle_save(tiles, state, expected, checkpoint):
            raise RuntimeError("the stored position moved during the build")
        expected = state
        t2 = time.perf_counter()
        hash_s += t1 - t0
        save_s += t2 - t1
        if size % 1_000_000 < every:
            log(f"  {size:,} leaves ({size / (t2 - began):,.0f}/s)")
    storage.put_signing_key(signer.verifier().key_string, BASE_TS + leaves)
    total = time.perf_counter() - began
    return {"build_s": round(total, 1), "build_hash_s": round(hash_s, 1),
            "build_save_s": round(save_s, 1),
            "build_leaves_per_s": round(leaves / total)}


def store_bytes(db_url: str) -> dict[str, Any]:
    if db_url.startswith("sqlite://"):
        path = Path(db_url.removeprefix("sqlite://"))
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")
                    if p.is_file())
        return {"store_mb": round(total / 1e6, 1)}
    with psycopg.connect(db_url) as con:
        row = con.execute(
            "SELECT pg_database_size(current_database()),"
            " pg_total_relation_size('merkle_leaves'), pg_total_relation_size('merkle_nodes'),"
            " pg_total_relation_size('checkpoints')").fetchone()
    assert row is not None
    return {"store_mb": round(row[0] / 1e6, 1), "merkle_leaves_mb": round(row[1] / 1e6, 1),
            "merkle_nodes_mb": round(row[2] / 1e6, 1), "checkpoints_mb": round(row[3] / 1e6, 1)}


def set_next_id(db_url: str, next_id: int) -> None:
    """Make the store hand out ``next_id`` as the next event id."""
    if db_url.startswith("sqlite://"):
        con = sqlite3.connect(db_url.removeprefix("sqlite://"), timeout=60)
        try:
            with con:
                con.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
                con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)",
                            (next_id - 1,))
        finally:
            con.close()
        return
    with psycopg.connect(db_url, autocommit=True) as pg:
        pg.execute("SELECT setval('events_id_seq', %s, %s)",
                    (max(next_id - 1, 1), next_id > 1))


def insert_real_events(storage: Storage, db_url: str, ids: list[int], leaves: int) -> None:
    """One real demo event at each of ``ids`` (ascending), then the sequence past the tree."""
    events = demo_events(len(ids), end_ms=BASE_TS + leaves, seed=99)
    for event_id, event in zip(ids, events, strict=False):
        set_next_id(db_url, event_id)
        assert event.timestamp_ms is not None
        new = encode(event, event.timestamp_ms, AuditAuthor.SYSTEM)
        result = storage.append([Batch.of([new], storage.prepare([new]))])[0]
        if not isinstance(result, AppendResult) or result.ids != [event_id]:
            raise RuntimeError(f"the event was not stored as id {event_id}: {result}")
    set_next_id(db_url, leaves + 1)


def real_ids(storage: Storage, leaves: int) -> list[int]:
    return [e.id for e in storage.events_after(0, 100_000) if e.id <= leaves]


# -- timing ------------------------------------------------------------------------------


def timed(calls: list[Any], fn: Callable[[Any], Any]) -> tuple[list[float], list[Any]]:
    samples, results = [], []
    for arg in calls:
        began = time.perf_counter()
        out = fn(arg)
        samples.append(time.perf_counter() - began)
        results.append(out)
    return samples, results


def figure(samples: list[float]) -> dict[str, Any]:
    out = latency_ms(samples, (50, 90, 99))
    return {"calls": len(samples), "median_ms": out.pop("p50_ms"), **out,
            "load_average_1m": round(os.getloadavg()[0], 2)}


def check_inclusion(proof: proofs.InclusionProof, signed_root: bytes, signed_size: int) -> bool:
    leaf = merkle.leaf_hash(proof.leaf.record)
    return (LeafRecord.decode(proof.leaf.record).event_id == proof.event_id
            and proof.tree_size == signed_size and proof.root == signed_root
            and merkle.verify_inclusion(leaf, proof.leaf.index, proof.tree_size, proof.path,
                                        proof.root))


def storage_figures(db_url: str, args: Any, rng: random.Random) -> dict[str, Any]:
    storage = open_storage(db_url)  # a connection opened after the build
    try:
        latest = storage.checkpoint()
        assert latest is not None
        size = latest.size
        ids = rng.sample(range(1, min(size, args.leaves) + 1), args.calls)
        cold, found = timed(ids, lambda i: proofs.inclusion(storage, i))
        ok = all(check_inclusion(p, latest.root, size) for p in found)
        again = ids[:]
        rng.shuffle(again)
        warm, found = timed(again, lambda i: proofs.inclusion(storage, i))
        ok = ok and all(check_inclusion(p, latest.root, size) for p in found)

        # Where the time of one proof goes (warm).
        leaf_s, checkpoint_s, path_s, root_s = [], [], [], []
        for event_id in again:
            t0 = time.perf_counter()
            leaf = proofs.find_leaf(storage, event_id)
            t1 = time.perf_counter()
            proofs.checkpoint_for(storage, None)
            t2 = time.perf_counter()
            tree = proofs.stored_tree(storage)
            assert leaf is not None
            tree.inclusion_proof(leaf.index, size)
            t3 = time.perf_counter()
            tree.root(size)
            t4 = time.perf_counter()
            leaf_s.append(t1 - t0)
            checkpoint_s.append(t2 - t1)
            path_s.append(t3 - t2)
            root_s.append(t4 - t3)

        pairs = []
        for _ in range(args.calls):
            new = rng.randrange(2, size + 1)
            pairs.append((rng.randrange(1, new), new))
        random_s, answers = timed(pairs, lambda p: proofs.consistency(storage, p[0], p[1]))
        consistent = all(merkle.verify_consistency(old, new, a[0], a[1], a[2])
                         for (old, new), a in zip(pairs, answers, strict=True))
        olds = [rng.randrange(1, size) for _ in range(args.calls)]
        latest_s, answers = timed(olds, lambda o: proofs.consistency(storage, o, size))
        consistent = consistent and all(
            a[1] == latest.root and merkle.verify_consistency(old, size, a[0], a[1], a[2])
            for old, a in zip(olds, answers, strict=True))
        return {
            "tree_size": size,
            "inclusion_cold": figure(cold),
            "inclusion_warm": figure(warm),
            "inclusion_proofs_verify": ok,
            "inclusion_breakdown_median_ms": {
                "find_leaf": round(sorted(leaf_s)[len(leaf_s) // 2] * 1000, 3),
                "latest_checkpoint": round(sorted(checkpoint_s)[len(leaf_s) // 2] * 1000, 3),
                "path": round(sorted(path_s)[len(leaf_s) // 2] * 1000, 3),
                "root": round(sorted(root_s)[len(leaf_s) // 2] * 1000, 3)},
            "consistency_random": figure(random_s),
            "consistency_to_latest": figure(latest_s),
            "consistency_proofs_verify": consistent,
        }
    finally:
        storage.close()


def http_figures(db_url: str, args: Any, ids: list[int], keys: Path, verifier: Any,
                 rng: random.Random) -> dict[str, Any]:
    home = scratch_dir("integrity-proofs-home")
    # The server signs with the same key (its consumer hashes the server's own events and
    # may sign a checkpoint while we measure).
    (home / "integrity").mkdir()
    for name in ("checkpoint.key", "checkpoint.key.pub"):
        shutil.copy2(keys / name, home / "integrity" / name)
    try:
        with Server(db_url, home, args.workers) as server, server.client() as client:
            prime_auth(client)

            def proof(event_id: int) -> dict[str, Any]:
                answer = client.get(f"/api/v1/events/{event_id}/proof")
                answer.raise_for_status()
                body: dict[str, Any] = orjson.loads(answer.content)
                return body

            order = ids[:]
            rng.shuffle(order)
            cold, bodies = timed(order, proof)
            rng.shuffle(order)
            warm, more = timed(order, proof)
            ok = True
            for body in bodies + more:
                b = base64.b64decode
                root = b(body["root"])
                signed = verify_checkpoint(body["checkpoint"]["note"], [verifier])
                ok = ok and signed.root == root and signed.size == body["tree_size"] and \
                    merkle.verify_inclusion(b(body["leaf_hash"]), body["leaf_index"],
                                            body["tree_size"], [b(h) for h in body["proof"]],
                                            root)
            latest = client.get("/api/v1/checkpoints/latest").json()["size"]
            olds = [rng.randrange(1, latest) for _ in range(args.calls)]

            def consistency(old: int) -> dict[str, Any]:
                answer = client.get("/api/v1/checkpoints/consistency", params={"from": old})
                answer.raise_for_status()
                body: dict[str, Any] = orjson.loads(answer.content)
                return body

            cons_s, answers = timed(olds, consistency)
            b = base64.b64decode
            consistent = all(merkle.verify_consistency(
                a["from"]["size"], a["to"]["size"], b(a["from"]["root"]), b(a["to"]["root"]),
                [b(h) for h in a["proof"]]) for a in answers)
        return {"server_workers": args.workers, "events_with_rows": len(ids),
                "http_inclusion_cold": figure(cold), "http_inclusion_warm": figure(warm),
                "http_inclusion_proofs_verify": ok,
                "http_consistency_to_latest": figure(cons_s),
                "http_consistency_proofs_verify": consistent}
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--leaves", type=int, default=10_000_000)
    p.add_argument("--checkpoint-every", type=int, default=10_000,
                   help="leaves per save (and signed checkpoint), as the consumer's default")
    p.add_argument("--calls", type=int, default=300, help="timed calls per figure")
    p.add_argument("--http-events", type=int, default=300,
                   help="real events inserted at random ids for the HTTP figure")
    p.add_argument("--store", metavar="URL",
                   help="use this store, built by an earlier run with --keep (its key is "
                        "KEYDIR/checkpoint.key, see --key-dir); not deleted")
    p.add_argument("--key-dir", type=Path, help="where the signing key is kept with --keep")
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--seed", type=int, default=17)
    args = p.parse_args()

    rng = random.Random(args.seed)
    facts = machine(args.backend, args.pg_url)
    result: dict[str, Any] = {"benchmark": "integrity_proofs", "backend": args.backend,
                              "leaves": args.leaves, "checkpoint_every": args.checkpoint_every}
    keys = args.key_dir or scratch_dir("integrity-proofs-key")
    signer = load_or_create_signer(keys / "checkpoint.key", ORIGIN)
    try:
        with (fresh_store(args.backend, args.pg_url, "proofs", keep=args.keep)
              if args.store is None else _existing(args.store)) as db_url:
            storage = open_storage(db_url)
            try:
                if args.store is None:
                    log(f"writing a tree of {args.leaves:,} leaves into {db_url}")
                    result["load_average_1m_build_start"] = round(os.getloadavg()[0], 2)
                    result.update(build_tree(storage, args.leaves, args.checkpoint_every,
                                             signer))
                    result["load_average_1m_build_end"] = round(os.getloadavg()[0], 2)
                ids = real_ids(storage, args.leaves)
                if not args.no_http and len(ids) < args.http_events:
                    log(f"inserting {args.http_events} real events at random ids")
                    ids = sorted(rng.sample(range(2, args.leaves + 1), args.http_events))
                    insert_real_events(storage, db_url, ids, args.leaves)
            finally:
                storage.close()
            if db_url.startswith("postgres"):
                with psycopg.connect(db_url, autocommit=True) as con:
                    con.execute("VACUUM ANALYZE")
            result.update(store_bytes(db_url))
            log(f"timing {args.calls} inclusion and consistency proofs")
            result.update(storage_figures(db_url, args, rng))
            if not args.no_http:
                log(f"timing {len(ids)} inclusion proofs over HTTP")
                result.update(http_figures(db_url, args, ids[:args.http_events], keys,
                                           signer.verifier(), rng))
            if args.keep:
                log(f"kept: --store {db_url} --key-dir {keys}")
    finally:
        if not args.keep and args.key_dir is None:
            shutil.rmtree(keys, ignore_errors=True)

    result["machine"] = facts
    result["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    result["targets"] = [
        target("integrity_proofs.inclusion_cold.median_ms",
               result["inclusion_cold"]["median_ms"], TARGET_MS, at_least=False),
        target("integrity_proofs.inclusion_warm.median_ms",
               result["inclusion_warm"]["median_ms"], TARGET_MS, at_least=False)]
    if "http_inclusion_warm" in result:
        result["targets"].append(target("integrity_proofs.http_inclusion_warm.median_ms",
                                        result["http_inclusion_warm"]["median_ms"], TARGET_MS,
                                        at_least=False))
    log(f"inclusion at {result['tree_size']:,}: cold median "
        f"{result['inclusion_cold']['median_ms']} ms, warm "
        f"{result['inclusion_warm']['median_ms']} ms"
        + (f"; HTTP {result['http_inclusion_warm']['median_ms']} ms"
           if "http_inclusion_warm" in result else ""))
    emit(result)


class _existing:
    """A store given with --store: used as it is, never deleted."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()

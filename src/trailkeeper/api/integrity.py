"""The verifiable log under ``/api/v1``: checkpoints, inclusion and consistency proofs, and
the raw tiles an independent verifier recomputes the tree from.

Hashes are base64 (as in the signed notes). Checkpoints and consistency proofs are for
anyone who may read events; an inclusion proof only for an event the caller may read; tiles
(which hold every event's id and time) only for roles that read everything.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trailkeeper.api.deps import PrincipalDep, ServiceDep
from trailkeeper.auth.permissions import scoped
from trailkeeper.auth.principals import Principal
from trailkeeper.errors import BadRequestError, NotFoundError, PermissionDeniedError
from trailkeeper.integrity import proofs
from trailkeeper.integrity.merkle import leaf_hash
from trailkeeper.query.ast import Compare
from trailkeeper.storage.merkle import CheckpointRecord

router = APIRouter(prefix="/api/v1", tags=["Integrity"])

_MAX_SIZE = (1 << 63) - 1
MAX_CHECKPOINTS = 1000
MAX_TILES = 64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def checkpoint_json(c: CheckpointRecord) -> dict[str, Any]:
    return {"origin": c.origin, "size": c.size, "root": _b64(c.root),
            "last_event_id": c.last_id, "created_ms": c.created_ms, "note": c.note,
            "compact_range": [_b64(h) for h in c.compact_range]}


def _count(name: str, value: str | None, *, default: int | None = None) -> int:
    if value is None or not value.strip():
        if default is None:
            raise BadRequestError(f"Parameter '{name}' is required (a tree size)")
        return default
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > _MAX_SIZE:
        raise BadRequestError(f"Parameter '{name}': {value!r} is not a whole number from 0 "
                              f"to {_MAX_SIZE}")
    return int(text)


def _reads_everything(principal: Principal) -> None:
    if not principal.sees_everything:
        raise PermissionDeniedError("Only sysadmins, admins and auditors may read the tree's"
                                    " tiles")


@router.get("/checkpoints/latest", summary="The latest signed checkpoint")
async def latest_checkpoint(service: ServiceDep, principal: PrincipalDep,
                            format: Annotated[str | None, Query(
                                description="json (default) or note: the signed note alone,"
                                            " as text/plain")] = None) -> Response:
    """``{"origin", "size", "root", "last_event_id", "created_ms", "note", "compact_range"}``;
    404 before the first checkpoint."""
    found = await run_in_threadpool(proofs.checkpoint_for, service.storage, None)
    if format == "note":
        return Response(found.note, media_type="text/plain; charset=utf-8")
    if format not in (None, "", "json"):
        raise BadRequestError(f"Parameter 'format': {format!r} is not json or note")
    return _json(checkpoint_json(found))


@router.get("/checkpoints/consistency", summary="Proof that one tree is a prefix of another")
async def consistency(service: ServiceDep, principal: PrincipalDep,
                      from_: Annotated[str | None, Query(alias="from",
                                                         description="the older tree size")]
                      = None,
                      to: Annotated[str | None, Query(
                          description="the newer tree size (default: the latest checkpoint)")]
                      = None) -> Response:
    """``{"from": {"size", "root"}, "to": {"size", "root"}, "proof": [...]}`` (RFC 9162
    §2.1.4); check it against roots you hold, not the ones in the answer."""
    storage = service.storage
    old = _count("from", from_)
    latest = await run_in_threadpool(proofs.checkpoint_for, storage, None)
    new = _count("to", to, default=latest.size)
    old_root, new_root, proof = await run_in_threadpool(proofs.consistency, storage, old, new)
    return _json({"from": {"size": old, "root": _b64(old_root)},
                  "to": {"size": new, "root": _b64(new_root)},
                  "proof": [_b64(h) for h in proof]})


@router.get("/checkpoints", summary="Signed checkpoints, smallest first")
async def list_checkpoints(service: ServiceDep, principal: PrincipalDep,
                           after: Annotated[str | None, Query(
                               description="only checkpoints of larger trees")] = None,
                           limit: Annotated[str | None, Query(
                               description=f"1 to {MAX_CHECKPOINTS}")] = None) -> Response:
    """``{"checkpoints": [...]}``; page with ``after`` = the last size seen."""
    count = _count("limit", limit, default=MAX_CHECKPOINTS)
    if not 1 <= count <= MAX_CHECKPOINTS:
        raise BadRequestError(f"Parameter 'limit': give 1 to {MAX_CHECKPOINTS}")
    after_size = _count("after", after, default=0) if after else -1
    found = await run_in_threadpool(
        lambda: service.storage.checkpoints(after_size=after_size, limit=count))
    return _json({"checkpoints": [checkpoint_json(c) for c in found]})


@router.get("/checkpoints/{size}", summary="The checkpoint of one tree size")
async def get_checkpoint(size: str, service: ServiceDep, principal: PrincipalDep) -> Response:
    found = await run_in_threadpool(proofs.checkpoint_for, service.storage,
                                    _count("size", size))
    return _json(checkpoint_json(found))


@router.get("/events/{event_id}/proof", summary="Inclusion proof of one event")
async def event_proof(event_id: int, service: ServiceDep, principal: PrincipalDep,
                      size: Annotated[str | None, Query(
                          description="tree size (default: the latest checkpoint)")] = None
                      ) -> Response:
    """``{"event_id", "leaf_index", "tree_size", "leaf_record", "leaf_hash", "root",
    "proof": [...], "checkpoint": {...} | null}`` (RFC 9162 §2.1.3). Recompute the leaf from
    the event itself (`trailkeeper.integrity.canonical`) before trusting ``leaf_record``."""
    storage = service.storage
    visible = await run_in_threadpool(storage.search, scoped(principal, Compare(
        "id", "=", event_id)), limit=1)
    if not visible.events:
        raise NotFoundError(f"No event with id {event_id}")
    tree_size = _count("size", size) if size else None
    proof = await run_in_threadpool(proofs.inclusion, storage, event_id, tree_size)
    return _json({
        "event_id": event_id, "leaf_index": proof.leaf.index, "tree_size": proof.tree_size,
        "leaf_record": _b64(proof.leaf.record), "leaf_hash": _b64(leaf_hash(proof.leaf.record)),
        "root": _b64(proof.root), "proof": [_b64(h) for h in proof.path],
        "checkpoint": checkpoint_json(proof.checkpoint) if proof.checkpoint else None})


@router.get("/integrity", summary="The state of the Merkle tree")
async def integrity_status(service: ServiceDep, principal: PrincipalDep) -> Response:
    """``{"tree_size", "last_event_id", "lag_events", "first_leaf_tile", "latest_checkpoint",
    "keys"}``: how far hashing has come and what retention pruned."""
    storage = service.storage

    def state() -> dict[str, Any]:
        size, last_id = proofs.tree_size(storage)
        latest = storage.checkpoint()
        return {"tree_size": size, "last_event_id": last_id,
                "lag_events": max(0, storage.max_id() - last_id),
                "first_leaf_tile": storage.merkle_first_leaf_tile(),
                "latest_checkpoint": checkpoint_json(latest) if latest else None,
                "keys": storage.signing_keys()}

    return _json(await run_in_threadpool(state))


@router.get("/integrity/range", summary="The compact range before an event")
async def integrity_range(service: ServiceDep, principal: PrincipalDep,
                          before_id: Annotated[str | None, Query(
                              description="the first event of your export")] = None
                          ) -> Response:
    """``{"size", "last_event_id", "compact_range"}``: the tree of the events before
    ``before_id``. Put it beside an export that starts at that event (in id order) and a later
    checkpoint, and ``trailkeeper verify DIR`` checks the export from there."""
    first = _count("before_id", before_id)
    found = await run_in_threadpool(proofs.range_before, service.storage, first)
    return _json({"size": found.size, "last_event_id": found.last_event_id,
                  "compact_range": [_b64(h) for h in found.compact_range]})


@router.get("/integrity/tiles/{level}", summary="Consecutive tiles of one level (JSON)")
async def tiles(level: int, service: ServiceDep, principal: PrincipalDep,
                first: Annotated[str | None, Query(description="the first tile's index")] = None,
                count: Annotated[str | None, Query(
                    description=f"how many (1 to {MAX_TILES}, default {MAX_TILES})")] = None
                ) -> Response:
    """``{"tiles": [{"index", "data"}]}`` (data in base64), absent tiles left out: what a
    remote verifier reads, a page at a time."""
    _reads_everything(principal)
    if not 0 <= level <= 8:
        raise BadRequestError("Parameter 'level' names a tile level, 0 to 8")
    start = _count("first", first, default=0)
    many = _count("count", count, default=MAX_TILES)
    if not 1 <= many <= MAX_TILES:
        raise BadRequestError(f"Parameter 'count': give 1 to {MAX_TILES}")
    found = await run_in_threadpool(service.storage.merkle_tiles, level, start,
                                    start + many - 1)
    return _json({"tiles": [{"index": t.index, "data": _b64(t.data)} for t in found]})


@router.get("/integrity/tiles/{level}/{index}", summary="One tile of the Merkle tree (bytes)")
async def tile(level: int, index: int, service: ServiceDep, principal: PrincipalDep
               ) -> Response:
    """Level 0: the 49-byte leaf records of leaves 256·index…; above: the 32-byte hashes of
    subtrees of 2^(8·level) leaves (see docs/integrity.md)."""
    _reads_everything(principal)
    if not 0 <= level <= 8 or not 0 <= index <= _MAX_SIZE:
        raise BadRequestError("Parameters 'level' (0 to 8) and 'index' (from 0) name a tile")
    found = await run_in_threadpool(service.storage.merkle_tiles, level, index, index)
    if not found:
        raise NotFoundError(f"No tile {level}/{index}")
    return Response(found[0].data, media_type="application/octet-stream")

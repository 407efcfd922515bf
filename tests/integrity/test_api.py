"""The integrity endpoints over real HTTP, on both stores: what an auditor's own tools fetch
and check with nothing but the public key."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import LiveServer, add_user
from tests.factories import event
from trailkeeper.auth.principals import Role
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity import ProofError, check_consistency, check_inclusion, merkle
from trailkeeper.integrity.canonical import canonical_from_line, leaf_record
from trailkeeper.integrity.consumer import IntegrityConsumer
from trailkeeper.integrity.keys import Verifier, generate_signer, read_verifier_key_file
from trailkeeper.integrity.note import verify_checkpoint
from trailkeeper.integrity.tree import CompactRange


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture
def key(service: AuditService, tmp_path: Path) -> Verifier:
    """A store of 300 events hashed in three checkpoints; the verifier key of their signer."""
    consumer = IntegrityConsumer(service.storage, tmp_path / "k" / "checkpoint.key",
                                 batch_size=100, every_events=100)
    for part in range(3):
        service.submit([event(minutes=part * 1000 + n, uid=f"e{part}-{n}") for n in range(100)],
                       screen=False)
        consumer.drain()
    return read_verifier_key_file(tmp_path / "k" / "checkpoint.key.pub")


def leaf_of(client: httpx.Client, event_id: int) -> bytes:
    """An event's leaf hash, recomputed from its export line as an auditor would."""
    line = client.get("/api/v1/events", params={"q": f"id:{event_id}", "format": "ndjson"})
    event_id, ts, canonical = canonical_from_line(orjson.loads(line.content))
    return merkle.leaf_hash(leaf_record(event_id, ts, canonical))


def test_the_latest_checkpoint_is_a_signed_note_over_the_tree(
        key: Verifier, client: httpx.Client) -> None:
    """JSON with the note and its parts; ``format=note`` is the note alone."""
    latest = client.get("/api/v1/checkpoints/latest").json()
    assert latest["size"] == 300 and latest["origin"].startswith("trailkeeper/")
    body = verify_checkpoint(latest["note"], [key])
    assert body.root == b64(latest["root"])
    assert merkle.fold([b64(h) for h in latest["compact_range"]]) == body.root
    note = client.get("/api/v1/checkpoints/latest", params={"format": "note"})
    assert note.headers["content-type"].startswith("text/plain")
    assert note.text == latest["note"]
    assert client.get("/api/v1/checkpoints/latest", params={"format": "xml"}).status_code == 400


def test_an_inclusion_proof_verifies_against_the_signed_root(
        key: Verifier, client: httpx.Client) -> None:
    """Leaf from the event, path from the server, root from a note the key verifies."""
    for event_id in (1, 257, 300):
        proof = client.get(f"/api/v1/events/{event_id}/proof").json()
        root = verify_checkpoint(proof["checkpoint"]["note"], [key]).root
        leaf = leaf_of(client, event_id)
        assert b64(proof["leaf_hash"]) == leaf
        assert merkle.verify_inclusion(leaf, proof["leaf_index"], proof["tree_size"],
                                       [b64(h) for h in proof["proof"]], root)
    older = client.get("/api/v1/events/5/proof", params={"size": 100}).json()
    assert older["tree_size"] == 100
    assert merkle.verify_inclusion(leaf_of(client, 5), 4, 100, [b64(h) for h in older["proof"]],
                                   verify_checkpoint(older["checkpoint"]["note"], [key]).root)


def test_a_consistency_proof_links_an_old_checkpoint_to_the_latest(
        key: Verifier, client: httpx.Client) -> None:
    """An auditor who kept checkpoint 100 checks that 300 extends it."""
    old = verify_checkpoint(client.get("/api/v1/checkpoints/100").json()["note"], [key])
    new = verify_checkpoint(client.get("/api/v1/checkpoints/latest").json()["note"], [key])
    answer = client.get("/api/v1/checkpoints/consistency", params={"from": 100}).json()
    assert answer["to"]["size"] == 300
    assert merkle.verify_consistency(100, 300, old.root, new.root,
                                     [b64(h) for h in answer["proof"]])


def test_checkpoints_are_listed_in_pages(key: Verifier, client: httpx.Client) -> None:
    """Smallest first; ``after`` continues."""
    first = client.get("/api/v1/checkpoints", params={"limit": 2}).json()["checkpoints"]
    rest = client.get("/api/v1/checkpoints", params={"after": 200}).json()["checkpoints"]
    assert [c["size"] for c in first] == [100, 200] and [c["size"] for c in rest] == [300]


def test_the_range_before_an_event_lets_an_export_from_there_reach_the_root(
        key: Verifier, client: httpx.Client) -> None:
    """Compact range of the events before #151, then the leaves of #151.., give the root."""
    found = client.get("/api/v1/integrity/range", params={"before_id": 151}).json()
    assert (found["size"], found["last_event_id"]) == (150, 150)
    tree = CompactRange(150, [b64(h) for h in found["compact_range"]])
    for event_id in range(151, 301):
        tree.append(leaf_of(client, event_id))
    latest = client.get("/api/v1/checkpoints/latest").json()
    assert tree.root() == verify_checkpoint(latest["note"], [key]).root


@pytest.mark.parametrize(("path", "params", "status", "words"), [
    ("/api/v1/checkpoints/consistency", {}, 400, "'from' is required"),
    ("/api/v1/checkpoints/consistency", {"from": "-1"}, 400, "'from'"),
    ("/api/v1/checkpoints/consistency", {"from": "x"}, 400, "'from'"),
    ("/api/v1/checkpoints/consistency", {"from": 10, "to": 9999}, 409, "latest checkpoint"),
    ("/api/v1/checkpoints/123", {}, 404, "No checkpoint of tree size 123"),
    ("/api/v1/checkpoints/abc", {}, 400, "'size'"),
    ("/api/v1/checkpoints", {"limit": 0}, 400, "'limit'"),
    ("/api/v1/events/99999/proof", {}, 404, "No event with id 99999"),
    ("/api/v1/events/5/proof", {"size": 3}, 409, "not covered by a tree of 3"),
    ("/api/v1/events/5/proof", {"size": 9999}, 409, "beyond the latest checkpoint"),
    ("/api/v1/integrity/range", {"before_id": "many"}, 400, "'before_id'"),
    ("/api/v1/integrity/tiles/9/0", {}, 400, "'level'"),
    ("/api/v1/integrity/tiles/0/99", {}, 404, "No tile 0/99"),
    ("/api/v1/integrity/tiles/0", {"count": 0}, 400, "'count'"),
    ("/api/v1/integrity/tiles/9", {}, 400, "'level'"),
])
def test_bad_requests_get_a_clear_error(key: Verifier, client: httpx.Client, path: str,
                                        params: dict[str, object], status: int,
                                        words: str) -> None:
    """Every refusal names what was wrong; nothing answers 500."""
    answer = client.get(path, params=params)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["message"]


def test_an_event_not_yet_hashed_has_no_proof_yet(key: Verifier, service: AuditService,
                                                   client: httpx.Client) -> None:
    """409 saying why, until the builder has taken it in."""
    [new_id] = service.submit([event(minutes=99_999)], screen=False).ids
    answer = client.get(f"/api/v1/events/{new_id}/proof")
    assert answer.status_code == 409 and "not in the Merkle tree" in answer.json()["message"]


def test_before_the_first_checkpoint_there_is_nothing_to_prove(client: httpx.Client) -> None:
    """404 with a message, not an empty answer."""
    answer = client.get("/api/v1/checkpoints/latest")
    assert answer.status_code == 404 and "No checkpoint" in answer.json()["message"]


def test_only_readers_of_everything_get_tiles_and_proofs_follow_visibility(
        key: Verifier, service: AuditService, server: LiveServer) -> None:
    """A plain user is refused the tiles (they name every event) and cannot prove an event
    they may not read; an auditor may."""
    add_user(service.storage, "carol", "carol password 1", Role.USER)
    add_user(service.storage, "audrey", "audrey password 1", Role.AUDITOR)
    with server.client(("carol", "carol password 1")) as carol:
        assert carol.get("/api/v1/integrity/tiles/0/0").status_code == 403
        assert carol.get("/api/v1/integrity/tiles/0").status_code == 403
        assert carol.get("/api/v1/events/5/proof").status_code == 404
        assert carol.get("/api/v1/checkpoints/latest").status_code == 200
    with server.client(("audrey", "audrey password 1")) as audrey:
        tile = audrey.get("/api/v1/integrity/tiles/0/0")
        assert tile.status_code == 200 and len(tile.content) == 256 * 49
        page = audrey.get("/api/v1/integrity/tiles/0", params={"first": 0}).json()["tiles"]
        assert [t["index"] for t in page] == [0, 1]
        assert base64.b64decode(page[0]["data"]) == tile.content
        assert audrey.get("/api/v1/events/5/proof").status_code == 200


def test_the_package_checks_a_proof_with_only_the_public_key(
        key: Verifier, client: httpx.Client) -> None:
    """`check_inclusion` takes the exported line, the proof and the key; a changed line, a
    proof for another event or a checkpoint signed by another key is refused."""
    line = orjson.loads(client.get("/api/v1/events", params={"q": "id:42",
                                                             "format": "ndjson"}).content)
    proof = client.get("/api/v1/events/42/proof").json()
    assert check_inclusion(line, proof, [key]).size == 300
    with pytest.raises(ProofError, match="was changed"):
        check_inclusion({**line, "source": "10.9.9.9"}, proof, [key])
    with pytest.raises(ProofError, match="another event"):
        check_inclusion(line, client.get("/api/v1/events/43/proof").json(), [key])
    with pytest.raises(ProofError, match="does not verify"):
        check_inclusion(line, proof, [generate_signer("x").verifier()])
    old = client.get("/api/v1/checkpoints/100").json()["note"]
    new = client.get("/api/v1/checkpoints/latest").json()["note"]
    consistent = client.get("/api/v1/checkpoints/consistency", params={"from": 100}).json()
    assert check_consistency(old, new, consistent["proof"], [key])[1].size == 300
    with pytest.raises(ProofError, match="rewritten"):
        check_consistency(old, new, consistent["proof"][1:], [key])

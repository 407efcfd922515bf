"""What authentication and permission checks add to a request: token vs no auth.

The server (this script with ``--serve``, a subprocess) is the real app from `build_app`
with two extra trivial routes that differ only in authentication: ``/bench/anonymous`` and
``/bench/authenticated`` (the same ``PrincipalDep`` every API route uses: token lookup,
hash, expiry, owner and grants, IP allowlist, rate limit, scope check, the success log line
written to ``$HOME/log/trailkeeper.log`` at INFO). Requests go over one keep-alive loopback
connection, the kinds interleaved round by round so drift hits all alike; figures are medians.
Also measured: a token without allowlist or rate limit, and HTTP Basic after its first
(Argon2) check, which is then served from the 60 s cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    ADMIN_PASSWORD,
    emit,
    free_port,
    fresh_store,
    latency_ms,
    log,
    machine,
    parser,
    percentile,
    scratch_dir,
    target,
)

ROUNDS = 400
PER_ROUND = 5
TARGET_MS = 1.0


def serve(db_url: str, home: Path, port: int) -> None:
    import uvicorn
    from fastapi import Depends
    from starlette.responses import PlainTextResponse

    from trailkeeper.api import deps
    from trailkeeper.api.app import build_app
    from trailkeeper.applog import setup_logging
    from trailkeeper.config import Settings
    from trailkeeper.ingest.service import AuditService

    setup_logging(home / "log", level="INFO")
    service = AuditService.open(db_url)
    app = build_app(service, Settings(home=home, db_url=db_url))

    @app.get("/bench/anonymous")
    async def anonymous() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/bench/authenticated")
    async def authenticated(caller: object = Depends(deps.principal)) -> PlainTextResponse:
        return PlainTextResponse("ok")

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def _prepare(db_url: str) -> dict[str, Any]:
    from trailkeeper.auth import tokens
    from trailkeeper.auth.passwords import hash_password
    from trailkeeper.model.timestamps import now_ms
    from trailkeeper.storage import open_storage
    from trailkeeper.storage.base import UserRecord

    storage = open_storage(db_url)
    try:
        storage.put_user(UserRecord("admin", hash_password(ADMIN_PASSWORD), "sysadmin"))
        full = tokens.TokenSpec("admin", frozenset(tokens.parse_scopes(["read"])),
                                tokens.parse_duration("30d"), ("10.0.0.0/8", "127.0.0.0/8"),
                                (100_000, 1), "bench full")
        plain = tokens.TokenSpec("admin", frozenset(tokens.parse_scopes(["read"])),
                                 description="bench plain")
        return {"token": tokens.issue(storage, full, created_by="bench", now_ms=now_ms())[0],
                "plain": tokens.issue(storage, plain, created_by="bench", now_ms=now_ms())[0]}
    finally:
        storage.close()


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--serve", nargs=3, metavar=("DB", "HOME", "PORT"), help=argparse_hidden())
    args = p.parse_args()
    if args.serve:
        serve(args.serve[0], Path(args.serve[1]), int(args.serve[2]))
        return
    with fresh_store(args.backend, args.pg_url, "auth", keep=args.keep) as db_url:
        home = scratch_dir("auth-home")
        secrets_ = _prepare(db_url)
        port = free_port()
        out = (home / "server.out").open("wb")
        process = subprocess.Popen([sys.executable, __file__, "--serve", db_url, str(home),
                                    str(port)], stdout=out, stderr=subprocess.STDOUT)
        try:
            result = _measure(f"http://127.0.0.1:{port}", secrets_)
            process.terminate()
            process.wait(30)
            log_lines = (home / "log" / "trailkeeper.log").read_text().count("Found a matching")
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
            out.close()
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
    added = result["token_ms"]["p50_ms"] - result["none_ms"]["p50_ms"]
    emit({
        "benchmark": "auth_overhead",
        "machine": machine(args.backend, args.pg_url),
        "requests_per_kind": ROUNDS * PER_ROUND,
        **result,
        "added_token_p50_ms": round(added, 3),
        "added_token_plain_p50_ms": round(
            result["token_plain_ms"]["p50_ms"] - result["none_ms"]["p50_ms"], 3),
        "added_basic_cached_p50_ms": round(
            result["basic_cached_ms"]["p50_ms"] - result["none_ms"]["p50_ms"], 3),
        "success_log_lines": log_lines,
        "targets": [target("auth added p50 ms (token, allowlist + rate limit)",
                           round(added, 3), TARGET_MS, at_least=False)],
    })


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def _measure(base: str, secrets_: dict[str, Any]) -> dict[str, Any]:
    kinds: dict[str, tuple[str, dict[str, str], tuple[str, str] | None]] = {
        "none": ("/bench/anonymous", {}, None),
        "token": ("/bench/authenticated", {"Authorization": f"Bearer {secrets_['token']}"},
                  None),
        "token_plain": ("/bench/authenticated",
                        {"Authorization": f"Bearer {secrets_['plain']}"}, None),
        "basic_cached": ("/bench/authenticated", {}, ("admin", ADMIN_PASSWORD)),
    }
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("bench server did not start")
        time.sleep(0.1)
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    with httpx.Client(base_url=base, timeout=30) as client:
        for path, headers, auth in kinds.values():  # warm up (and the Argon2 check once)
            for _ in range(50):
                client.get(path, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT
                           ).raise_for_status()
        log(f"measuring {ROUNDS * PER_ROUND} requests per kind")
        for _ in range(ROUNDS):
            for kind, (path, headers, auth) in kinds.items():
                for _ in range(PER_ROUND):
                    started = time.perf_counter()
                    response = client.get(path, headers=headers,
                                          auth=auth or httpx.USE_CLIENT_DEFAULT)
                    samples[kind].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
    result = {f"{k}_ms": latency_ms(v) for k, v in samples.items()}
    for k, v in samples.items():
        result[f"{k}_ms"]["mean_ms"] = round(sum(v) / len(v) * 1000, 3)
        result[f"{k}_ms"]["p50_ms"] = round(percentile(v, 0.5) * 1000, 3)
    return result


if __name__ == "__main__":
    main()

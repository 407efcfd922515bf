"""Operations endpoints: health (no authentication) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from trailkeeper.api.deps import PrincipalDep, ServiceDep

router = APIRouter(tags=["Operations"])


@router.get("/healthz", summary="Liveness and store reachability (no authentication)")
async def healthz(service: ServiceDep) -> Response:
    try:
        await run_in_threadpool(service.storage.max_id)
    except Exception as exc:  # any failure to read means "not healthy"
        return JSONResponse({"status": "unavailable", "store": type(exc).__name__},
                            status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(service: ServiceDep, principal: PrincipalDep) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

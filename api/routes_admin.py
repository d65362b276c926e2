"""Health and API-key administration (admin role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

import kmrules
from api.auth import require
from api.bodies import parse_body
from api.context import AppContext, get_context
from api.errors import ApiError, documented, not_found
from api.examples import KEY_REQUEST
from api.keystore import Principal
from api.openapi import body_ref
from api.schemas import Health, KeyCreated, KeyCreateIn, KeyOut

router = APIRouter(tags=["admin"])
Context = Annotated[AppContext, Depends(get_context)]
Admin = Annotated[Principal, Depends(require("keys"))]


@router.get("/healthz", response_model=Health, responses=documented(503))
async def healthz(ctx: Context) -> Health:
    """Alive, rules loaded, database reachable (no key needed; reveals no case data)."""

    def ping() -> None:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except Exception as exc:  # any driver error means "not ready": answer 503, log the cause
        raise ApiError(503, "database_unavailable", f"database unreachable: {type(exc).__name__}") from exc
    return Health(
        status="ok", version=kmrules.__version__, schemes=sorted(ctx.book.schemes), database=ctx.engine.dialect.name
    )


@router.get("/v1/keys", response_model=list[KeyOut], responses=documented(401, 403))
def list_keys(_: Admin, ctx: Context) -> list[KeyOut]:
    """Every API key's id, role and dates (never a key or its hash)."""
    return [KeyOut(id=r.id, role=r.role, created_at=r.created_at, revoked_at=r.revoked_at) for r in ctx.keys.list()]


@router.post(
    "/v1/keys",
    response_model=KeyCreated,
    status_code=201,
    responses=documented(401, 403, 413, 422),
    openapi_extra=body_ref("KeyCreateIn", {"caseworker": {"summary": "A caseworker key", "value": KEY_REQUEST}}),
)
async def create_key(request: Request, _: Admin, ctx: Context) -> KeyCreated:
    """A new key for a role; the key is in this answer only (the server keeps its hash)."""
    body = await parse_body(request, KeyCreateIn)
    key, record = await run_in_threadpool(ctx.keys.create, body.role)
    return KeyCreated(id=record.id, role=record.role, created_at=record.created_at, revoked_at=None, key=key)


@router.post("/v1/keys/{key_id}/revoke", response_model=KeyOut, responses=documented(401, 403, 404))
def revoke_key(key_id: str, _: Admin, ctx: Context) -> KeyOut:
    """Revoke a key: it stops working on every worker within the key cache time (seconds)."""
    if not ctx.keys.revoke(key_id):
        raise not_found("key", key_id)
    record = next(r for r in ctx.keys.list() if r.id == key_id)
    return KeyOut(id=record.id, role=record.role, created_at=record.created_at, revoked_at=record.revoked_at)

"""Quotas and target figures: definitions from the variants, places used per period, release."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from api.auth import require
from api.bodies import parse_body
from api.context import AppContext, get_context
from api.errors import documented
from api.examples import RELEASE_REQUEST
from api.keystore import Principal
from api.openapi import body_ref
from api.schemas import QuotaOut, ReleaseIn, ReleaseOut
from kmrules.quota.definitions import QuotaDefinition
from kmrules.quota.models import Usage
from kmrules.rulebook import Rulebook
from kmrules.service import UnknownQuotaError

router = APIRouter(prefix="/v1", tags=["quotas"])
Context = Annotated[AppContext, Depends(get_context)]


def _quota_out(book: Rulebook, defn: QuotaDefinition, usage: list[Usage]) -> QuotaOut:
    variant = next(
        (vid for vid, v in sorted(book.variants.items()) if any(q.get("id") == defn.id for q in v.quotas)), None
    )
    return QuotaOut(
        id=defn.id,
        variant=variant,
        definition=defn.model_dump(mode="json"),
        usage=[u for u in usage if u.quota_id == defn.id],
    )


@router.get("/quotas", response_model=list[QuotaOut], responses=documented(401, 403, 503))
def get_quotas(_: Annotated[Principal, Depends(require("read"))], ctx: Context) -> list[QuotaOut]:
    """Every quota and target figure, with the places used in its current period and in every
    period that holds places."""
    usage = ctx.service.quota_status()
    return [_quota_out(ctx.book, d, usage) for d in ctx.service.quota_definitions()]


@router.get("/quotas/{quota_id}", response_model=QuotaOut, responses=documented(401, 403, 404, 503))
def get_quota(quota_id: str, _: Annotated[Principal, Depends(require("read"))], ctx: Context) -> QuotaOut:
    """One quota or target figure and its use per period (404 lists the known quota ids)."""
    usage = ctx.service.quota_status(quota_id)
    defn = next(d for d in ctx.service.quota_definitions() if d.id == quota_id)
    return _quota_out(ctx.book, defn, usage)


@router.post(
    "/quotas/{quota_id}/release",
    response_model=ReleaseOut,
    responses=documented(401, 403, 404, 413, 422, 503),
    openapi_extra=body_ref("ReleaseIn", {"release": {"summary": "Withdrawn application", "value": RELEASE_REQUEST}}),
    summary="Give back a case's place (withdrawal)",
)
async def release_place(
    quota_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("quota_release"))],
    ctx: Context,
) -> ReleaseOut:
    """Release the place the case holds in this quota; audited in the same transaction.
    404 for an unknown quota (with the known ids) or when the case holds no place."""
    body = await parse_body(request, ReleaseIn)
    known = [d.id for d in ctx.service.quota_definitions()]
    if quota_id not in known:
        raise UnknownQuotaError(quota_id, known)
    released = await ctx.write(ctx.service.release, body.case_id, quota_id, actor_role=principal.role)
    return ReleaseOut(released=released)

"""Decisions: decide one request (quota place + audit row), read one back, compare variants.

The bodies are read raw and handed to kmrules, which validates them: a caller gets the rule
core's own field paths (`case.job.gross_monthly_salary`) and reasons. Decisions go through
`AppContext.write`: on the event loop by default, or in a bounded thread pool (see
Settings.write_concurrency). Reads and compares run in the thread pool.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

import kmrules
from api import examples
from api.auth import BEARER_SECURITY, authorize, bearer_key, require
from api.bodies import read_json
from api.context import AppContext, get_context
from api.errors import documented, invalid
from api.keystore import Principal
from api.openapi import COMPARE_BODY, DECISION_BODY, body_ref
from api.schemas import DecisionEnvelope, DecisionOut
from kmrules.compare import Comparison
from kmrules.service import RecordedDecision

router = APIRouter(prefix="/v1", tags=["decisions"])
Context = Annotated[AppContext, Depends(get_context)]
JSON = "application/json"

IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_MAX = 200
_IDEMPOTENCY_PATTERN = r"^[\x21-\x7e]+$"
_IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Retrying with the same key returns the stored decision and takes no second quota place.",
    "schema": {"type": "string", "minLength": 1, "maxLength": _IDEMPOTENCY_MAX, "pattern": _IDEMPOTENCY_PATTERN},
}
_PRINTABLE = re.compile(_IDEMPOTENCY_PATTERN)

_DECISION_EXAMPLES = {
    "granted": {"summary": "Software engineer, 2023: granted", "value": examples.DECISION_REQUEST},
    "refused": {
        "summary": "The same case below the salary criterion: refused",
        "value": examples.DECISION_REQUEST_REFUSED,
    },
}
_COMPARE_EXAMPLES = {
    "baseline": {"summary": "One variant", "value": examples.COMPARE_REQUEST},
    "what_if": {"summary": "Baseline against a higher 30+ criterion", "value": examples.COMPARE_WHAT_IF},
}


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, checked as documented (422 naming the header otherwise)."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    location = f"header.{IDEMPOTENCY_HEADER}"
    if not 1 <= len(value) <= _IDEMPOTENCY_MAX:
        raise invalid(location, f"must be 1 to {_IDEMPOTENCY_MAX} characters, got {len(value)}")
    if _PRINTABLE.fullmatch(value) is None:
        raise invalid(location, "must be printable ASCII without spaces (characters 0x21 to 0x7e)")
    return value


def decision_json(recorded: RecordedDecision) -> Response:
    """The decision JSON exactly as audited, plus `id`, `created_at` and `idempotent_replay`
    (the DecisionOut schema): the audited text is reused, not serialised a second time."""
    head = DecisionEnvelope(
        id=recorded.id, created_at=recorded.created_at, idempotent_replay=recorded.idempotent_replay
    ).model_dump_json()
    body = recorded.decision_json  # a JSON object: "{...}"
    headers = {"Idempotent-Replayed": "true"} if recorded.idempotent_replay else None
    return Response(f"{head[:-1]},{body[1:]}", media_type=JSON, headers=headers)


@router.post(
    "/decisions",
    response_model=DecisionOut,
    responses=documented(401, 403, 404, 409, 413, 422, 500, 503),
    openapi_extra={
        **body_ref(DECISION_BODY, _DECISION_EXAMPLES),
        "parameters": [_IDEMPOTENCY_PARAMETER],
        "security": BEARER_SECURITY,
    },
    summary="Decide one application",
)
async def post_decision(request: Request) -> Response:
    """Decide, take a quota place where a quota governs the case, and write the audit row, in
    one transaction. With `"dry_run": true` the ledger is read but no place is taken."""
    # The hot path: FastAPI's dependency injection cost more than the decision's HTTP share,
    # so this route reads its key and header itself, with the same checks (documented above).
    ctx = get_context(request)
    principal = await authorize(request, ctx, bearer_key(request), "decide")
    key = idempotency_key(request)
    body = await read_json(request)
    recorded = await ctx.write(ctx.service.decide, body, idempotency_key=key, actor_role=principal.role)
    return decision_json(recorded)


@router.get(
    "/decisions/{decision_id}",
    response_model=DecisionOut,
    responses=documented(401, 403, 404, 422),
    summary="Read a decision back from the audit log",
)
async def get_decision(
    decision_id: str,
    _: Annotated[Principal, Depends(require("read"))],
    ctx: Context,
) -> Response:
    """The decision exactly as it was answered (and audited)."""
    recorded = await run_in_threadpool(ctx.service.get_decision, decision_id)
    return decision_json(recorded)


@router.post(
    "/decisions/compare",
    response_model=Comparison,
    responses=documented(401, 403, 404, 409, 413, 422, 500),
    openapi_extra=body_ref(COMPARE_BODY, _COMPARE_EXAMPLES),
    summary="Decide one case under several variants",
)
async def post_compare(
    request: Request,
    _: Annotated[Principal, Depends(require("compare"))],
    ctx: Context,
) -> Response:
    """Every variant's decision and the criteria whose result differs. A simulation: it takes
    no quota place and writes no audit row."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid("(body)", "a compare request must be a JSON object")
    if "variant" in body:
        raise invalid("variant", "not used by compare: list the variants under `variants`")
    variants = body.pop("variants", None)
    if not isinstance(variants, list):
        raise invalid("variants", f"required: a list of 1 to {ctx.settings.max_compare_variants} variants")
    if not 1 <= len(variants) <= ctx.settings.max_compare_variants:
        raise invalid("variants", f"give 1 to {ctx.settings.max_compare_variants} variants, not {len(variants)}")
    result = await run_in_threadpool(kmrules.compare, body, variants, rules_dir=ctx.rules_dir)
    return Response(result.model_dump_json(), media_type=JSON)

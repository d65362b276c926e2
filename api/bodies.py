"""Reading request bodies: every malformed body is a 422 naming the field path and the reason.

Why not FastAPI's body parameters: they answer a body that is not JSON with 400 and prefix
paths with `body.`; reading the body here gives one behaviour for every route, and lets the
decision routes hand the raw JSON to kmrules, which validates it itself.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, ProblemOut, invalid

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request) -> Any:
    """The body as JSON, or 422 saying why it is not (empty, not UTF-8, not JSON, too deep)."""
    raw = await request.body()
    if not raw.strip():
        raise invalid("(body)", "a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise invalid("(body)", f"not valid JSON: {exc}") from exc


async def parse_body(request: Request, model: type[M]) -> M:
    """The body validated by a pydantic model, or 422 with one problem per field."""
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            ProblemOut(location=".".join(str(p) for p in e["loc"]) or "(body)", reason=e["msg"]) for e in exc.errors()
        ]
        raise ApiError(422, "invalid_request", "the request is invalid: see problems", problems=problems) from exc

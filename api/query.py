"""Unknown query parameters are an error, not silently ignored (a typo like `dat=` would
otherwise return today's values without a word)."""

from __future__ import annotations

from fastapi import Request
from fastapi.routing import APIRoute

from api.errors import ApiError, ProblemOut


async def reject_unknown_query(request: Request) -> None:
    """Dependency for every route: 422 naming each query parameter the route does not take."""
    route = request.scope.get("route")
    allowed = {p.alias for p in route.dependant.query_params} if isinstance(route, APIRoute) else set()
    unknown = sorted({key for key in request.query_params if key not in allowed})
    if unknown:
        raise ApiError(
            422,
            "invalid_request",
            "unknown query parameter(s): " + ", ".join(repr(k) for k in unknown),
            problems=[ProblemOut(location=f"query.{k}", reason="not a parameter of this endpoint") for k in unknown],
        )

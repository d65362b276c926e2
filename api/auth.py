"""Bearer-key authentication and role checks.

401 when no key or an unknown/revoked key is presented, 403 when the key's role lacks the
permission. The role is put on the request state for the access log (never the key).
`authorize` is the one check; `require(permission)` wraps it as a FastAPI dependency (which
also documents the bearer scheme), and the decision route, the hot path, calls it directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from api.context import AppContext, get_context
from api.errors import ApiError
from api.keystore import PERMISSIONS, Permission, Principal

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")
BEARER_SECURITY: list[dict[str, list[Any]]] = [{bearer.scheme_name: []}]
"""The OpenAPI security requirement of a route that calls `authorize` itself."""
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_key(request: Request) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, read as HTTPBearer reads it."""
    header = request.headers.get("Authorization")
    scheme, credentials = get_authorization_scheme_param(header)
    if not (header and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def authorize(request: Request, ctx: AppContext, key: str | None, permission: Permission) -> Principal:
    """The caller's principal if `key` is active and its role grants `permission`; else 401/403."""
    if not key:
        raise ApiError(401, "unauthenticated", "send an API key: Authorization: Bearer <key>", headers=_CHALLENGE)
    # A miss (first use, or every key_cache_seconds) asks the database where decisions run:
    # on the loop by default, where the first request refreshes the cache for all behind it.
    # (In the thread pool, every request in flight at expiry missed at once and queued for
    # the GIL behind the loop's decisions: a 25-65 ms stall every 5 s at 500 requests/s.)
    principal = ctx.keys.cached(key) or await ctx.write(ctx.keys.authenticate, key)
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked API key", headers=_CHALLENGE)
    request.scope.setdefault("state", {})["role"] = principal.role
    if not principal.may(permission):
        allowed = sorted(role for role, perms in PERMISSIONS.items() if permission in perms)
        raise ApiError(
            403,
            "forbidden",
            f"role {principal.role!r} may not {permission}; roles that may: {', '.join(allowed)}",
        )
    return principal


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys whose role grants `permission`."""

    async def dependency(
        request: Request,
        ctx: Annotated[AppContext, Depends(get_context)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        return await authorize(request, ctx, credentials.credentials if credentials else None, permission)

    dependency.__name__ = f"require_{permission}"
    return dependency

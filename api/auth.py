"""Bearer-key authentication and role checks as FastAPI dependencies.

401 when no key or an unknown/revoked key is presented, 403 when the key's role lacks the
permission. The role is put on the request state for the access log (never the key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import AppContext, get_context
from api.errors import ApiError
from api.keystore import PERMISSIONS, Permission, Principal

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys whose role grants `permission`."""
    allowed = sorted(role for role, perms in PERMISSIONS.items() if permission in perms)

    async def dependency(
        request: Request,
        ctx: Annotated[AppContext, Depends(get_context)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise ApiError(401, "unauthenticated", "send an API key: Authorization: Bearer <key>", headers=_CHALLENGE)
        key = credentials.credentials
        principal = ctx.keys.cached(key) or await run_in_threadpool(ctx.keys.authenticate, key)
        if principal is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked API key", headers=_CHALLENGE)
        request.scope.setdefault("state", {})["role"] = principal.role
        if not principal.may(permission):
            raise ApiError(
                403,
                "forbidden",
                f"role {principal.role!r} may not {permission}; roles that may: {', '.join(allowed)}",
            )
        return principal

    dependency.__name__ = f"require_{permission}"
    return dependency

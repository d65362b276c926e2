"""A direct path for the hot route, `POST /v1/decisions`: past Starlette's router and FastAPI's
request handler, to the same endpoint function with the same error handlers.

Why: FastAPI's route machinery around the decision endpoint (route matching over every
route, the app-level dependency solver, three AsyncExitStacks, the exception-middleware and
request-response wrappers) cost about 0.25 ms of CPU per decision in-process, more than a
quarter of a whole decision. The endpoint reads its key, header and body itself already, so
nothing that machinery did is lost:
- the route is still registered with FastAPI (OpenAPI, TestClient, other methods' 405);
- only an exact `POST /v1/decisions` without a query string comes this way; anything else
  (a query string, which the app-level check refuses; a trailing slash; a mounted root path)
  takes the ordinary route, so its answer is FastAPI's own;
- an exception is answered by the app's own handler for its type, found as Starlette's
  ExceptionMiddleware finds it; one without a handler (a bug) goes on up to Starlette's
  ServerErrorMiddleware, which answers the typed 500 and logs it, as on every other route.

It sits innermost among the user middleware, so request ids, the access log line and the
body limit wrap it exactly as they wrap every other route.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class DirectRouteMiddleware:
    """Serves one (method, path) by calling its endpoint directly; everything else passes on."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, router: APIRouter, method: str, path: str) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.method = method
        self.path = path
        self.route = route_of(router, method, path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == self.method
            and scope["path"] == self.path
            and not scope.get("query_string")
            and not scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # for the access log, as Starlette's router sets it
        request = Request(scope, receive, send)  # scope["app"] is set already, by Starlette
        endpoint: Endpoint = self.route.endpoint
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # no handler of its own: ServerErrorMiddleware answers and logs it
            answered = handler(request, exc)
            response = await answered if inspect.isawaitable(answered) else answered
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Handler | None:
        """The app's handler for this exception's type, by its MRO, as ExceptionMiddleware
        looks it up; the catch-all (`Exception` or 500) is left to ServerErrorMiddleware."""
        handlers: dict[Any, Handler] = self.fastapi_app.exception_handlers
        for kind in type(exc).__mro__:
            if kind is Exception:
                return None
            if kind in handlers:
                return handlers[kind]
        return None


def route_of(router: APIRouter, method: str, path: str) -> APIRoute:
    """The one route of `router` that serves (method, path); an error at start-up otherwise."""
    matches = [r for r in router.routes if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())]
    if len(matches) != 1:
        raise RuntimeError(f"expected one route {method} {path}, found {len(matches)}")
    return matches[0]

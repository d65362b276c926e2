"""Typed errors to HTTP: every failure has one documented JSON shape and a stable `error` code.

Why one table: the rule core raises typed exceptions (kmrules.errors, quota and store
errors); the API's only job is to pick the status and say what was wrong, where. Anything not
in the table is a bug and answers 500 with a typed body; it is re-raised for the server log,
never swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kmrules.errors import (
    EngineError,
    KmrulesError,
    ParameterNotDefinedError,
    RequestError,
    RuleFileError,
    UnknownSchemeError,
    UnknownVariantError,
    VariantConflictError,
)
from kmrules.quota.errors import (
    HeldInOtherPeriodError,
    InvalidCaseIdError,
    InvalidPeriodKeyError,
    LedgerBusyError,
    NotGovernedError,
    NothingHeldError,
    QuotaError,
)
from kmrules.service import DecisionNotFoundError, IdempotencyConflictError, UnknownQuotaError
from kmrules.store.errors import DuplicateIdempotencyKeyError, StoreError

log = logging.getLogger("kmrules.api")


class ProblemOut(BaseModel):
    """One thing wrong with the input: the field path (e.g. `case.job.gross_monthly_salary`) and why."""

    model_config = ConfigDict(extra="forbid")

    location: str
    reason: str


class ErrorBody(BaseModel):
    """Every non-2xx answer has this shape."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_request",
                    "message": "the request is invalid: see problems",
                    "problems": [
                        {"location": "case.job.gross_monthly_salary", "reason": "Input should be a valid number"}
                    ],
                    "known": None,
                    "request_id": "6f1c2b0e4c2a4a0e9b8a3f0d2c1e5a7b",
                }
            ]
        },
    )

    error: str = Field(description="Stable machine-readable code, e.g. invalid_request, unknown_variant.")
    message: str
    problems: list[ProblemOut] = Field(default_factory=list, description="Field path and reason per problem (422).")
    known: list[str] | None = Field(default=None, description="The known ids, when an id was not found (404).")
    request_id: str | None = None


class ApiError(Exception):
    """An HTTP-level error raised by the API layer itself (not found, auth, limits)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        problems: Sequence[ProblemOut] = (),
        known: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problems = list(problems)
        self.known = known
        self.headers = headers


class BodyTooLargeError(Exception):
    """The request body grew past the limit while streaming in (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


def invalid(location: str, reason: str) -> ApiError:
    """A 422 for one problem found by the API layer (e.g. a body that is not JSON)."""
    return ApiError(
        422,
        "invalid_request",
        "the request is invalid: see problems",
        problems=[ProblemOut(location=location, reason=reason)],
    )


def not_found(what: str, ident: str, known: list[str] | None = None) -> ApiError:
    """A 404 naming what was not found and, when the list is small enough to help, the known ids."""
    return ApiError(404, f"unknown_{what}", f"no {what} {ident!r}", known=known)


# (exception type, status, code). Most specific first: the first isinstance match wins.
_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (RequestError, 422, "invalid_request"),
    (UnknownSchemeError, 404, "unknown_scheme"),
    (UnknownVariantError, 404, "unknown_variant"),
    (VariantConflictError, 409, "variant_conflict"),
    (ParameterNotDefinedError, 422, "parameter_not_defined"),
    (DecisionNotFoundError, 404, "unknown_decision"),
    (UnknownQuotaError, 404, "unknown_quota"),
    (IdempotencyConflictError, 409, "idempotency_conflict"),
    (InvalidCaseIdError, 422, "invalid_case_id"),
    (InvalidPeriodKeyError, 422, "invalid_period_key"),
    (NotGovernedError, 422, "quota_not_governing"),
    (NothingHeldError, 404, "nothing_held"),
    (HeldInOtherPeriodError, 409, "held_in_other_period"),
    (DuplicateIdempotencyKeyError, 409, "idempotency_conflict"),
    (LedgerBusyError, 503, "ledger_busy"),
    (EngineError, 500, "engine_error"),
    (RuleFileError, 500, "rule_file_error"),
    (QuotaError, 500, "quota_error"),
    (StoreError, 500, "store_error"),
    (KmrulesError, 500, "internal_error"),
)


def classify(exc: BaseException) -> tuple[int, str]:
    """The status and code of a typed kmrules error."""
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"


def request_id_of(request: Request) -> str | None:
    """The id the request middleware gave this request (None outside it)."""
    state = request.scope.get("state") or {}
    value = state.get("request_id")
    return value if isinstance(value, str) else None


def error_response(
    request: Request, status: int, body: ErrorBody, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Render an ErrorBody with the request id filled in."""
    body.request_id = request_id_of(request)
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _kmrules_body(exc: KmrulesError, code: str, status: int) -> ErrorBody:
    problems: list[ProblemOut] = []
    known: list[str] | None = None
    message = str(exc)
    if isinstance(exc, RequestError):
        problems = [ProblemOut(location=p.location, reason=p.reason) for p in exc.problems]
        message = "the request is invalid: see problems"
    elif isinstance(exc, UnknownSchemeError | UnknownVariantError | UnknownQuotaError):
        known = list(exc.known)
    elif isinstance(exc, ParameterNotDefinedError):
        problems = [ProblemOut(location="case.application_date", reason=message)]
    elif status >= 500:
        message = f"{type(exc).__name__}: {message}"
    return ErrorBody(error=code, message=message, problems=problems, known=known)


def _location(loc: Sequence[Any]) -> str:
    """FastAPI's ('query', 'date') -> 'query.date'; body paths drop the leading 'body'."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "(body)"


async def _on_kmrules(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KmrulesError)
    status, code = classify(exc)
    if status >= 500:
        log.error("typed error answered with %s", status, exc_info=exc, extra={"error": code})
    headers = {"Retry-After": "1"} if status == 503 else None
    return error_response(request, status, _kmrules_body(exc, code, status), headers)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body = ErrorBody(error=exc.error, message=exc.message, problems=exc.problems, known=exc.known)
    return error_response(request, exc.status, body, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        ProblemOut(location=_location(e.get("loc", ())), reason=str(e.get("msg", "invalid"))) for e in exc.errors()
    ]
    body = ErrorBody(error="invalid_request", message="the request is invalid: see problems", problems=problems)
    return error_response(request, 422, body)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    body = ErrorBody(error=code, message=str(exc.detail))
    return error_response(request, exc.status_code, body, dict(exc.headers or {}))


async def _on_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLargeError)
    return error_response(request, 413, ErrorBody(error="payload_too_large", message=str(exc)))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Last resort (a bug): a typed 500 body; Starlette re-raises the exception for the log."""
    body = ErrorBody(
        error="internal_error", message=f"unexpected {type(exc).__name__}; see the server log for request_id"
    )
    return error_response(request, 500, body)


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(KmrulesError, _on_kmrules)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(BodyTooLargeError, _on_too_large)
    app.add_exception_handler(Exception, _on_unexpected)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all with the ErrorBody schema."""
    text = {
        401: "No or unknown API key (send `Authorization: Bearer <key>`).",
        403: "The key's role may not do this.",
        404: "Unknown id; `known` lists the known ids where that helps.",
        409: "Conflict (variants that contradict each other, an idempotency key reused).",
        413: "Request body above the size limit.",
        422: "Malformed request: each problem names the field path and the reason.",
        500: "A bug (never expected): a typed body and a request id to find it in the log.",
        503: "The quota ledger stayed busy; retry.",
    }
    return {s: {"model": ErrorBody, "description": text.get(s, "Error.")} for s in statuses}

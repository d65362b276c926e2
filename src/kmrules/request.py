"""The request envelope and its validation: errors name the field path and the reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kmrules.errors import Problem, RequestError
from kmrules.facts import flatten
from kmrules.rulebook import Rulebook


class RequestEnvelope(BaseModel):
    """Top level of a decision request; the case itself is checked against rules/facts.yaml."""

    model_config = ConfigDict(extra="forbid", strict=True)

    scheme: str = Field(min_length=1)
    variant: str | list[str] | dict[str, Any] = "baseline"
    case: dict[str, Any]
    case_id: str | None = Field(default=None, min_length=1, max_length=200)
    dry_run: bool = False


def _problems(exc: ValidationError, prefix: str) -> list[Problem]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        out.append(Problem(path or "(body)", err["msg"]))
    return out


def parse_request(book: Rulebook, request: Any) -> tuple[RequestEnvelope, dict[str, Any], dt.date]:
    """Validate the envelope and the case; return (envelope, flat case facts, application date)."""
    if not isinstance(request, dict):
        raise RequestError([Problem("(body)", "a request must be a JSON object")])
    try:
        envelope = RequestEnvelope.model_validate(request)
    except ValidationError as exc:
        raise RequestError(_problems(exc, "")) from exc
    book.scheme(envelope.scheme)
    try:
        case = book.catalogue.model.model_validate(envelope.case)
    except ValidationError as exc:
        raise RequestError(_problems(exc, "case")) from exc
    facts = flatten(case, book.catalogue.facts)
    on = facts["application_date"]
    assert isinstance(on, dt.date)
    return envelope, facts, on

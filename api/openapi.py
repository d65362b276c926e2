"""The OpenAPI document: request-body schemas built from the loaded rules, worked examples.

Why built at run time: the case a decision request carries is defined by `rules/facts.yaml`
(kmrules builds its validator from it), so its schema is taken from that same validator; a
policy team running its own copy of the rules gets a document that matches it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

import kmrules
from api import examples
from api.schemas import KeyCreateIn, ReleaseIn, WhatIf
from kmrules.errors import KmrulesError
from kmrules.rulebook import Rulebook

log = logging.getLogger("kmrules.api")

DECISION_BODY = "DecisionRequest"
COMPARE_BODY = "CompareRequest"

DESCRIPTION = """\
Permit-decision simulation for the Dutch knowledge-migrant scheme and the EU Blue Card, with
the policy variants of the 2023 labour-migration package.

Authenticate with `Authorization: Bearer <key>`. Roles: `caseworker` (decide, read),
`policy` (compare, simulate, read), `admin` (everything, including quota release and keys).
Every error has the same JSON shape (`ErrorBody`); a malformed body gets 422 with the path of
each bad field (e.g. `case.job.gross_monthly_salary`) and the reason.
"""


def body_ref(name: str, example_sets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is read raw and validated by kmrules."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{name}"},
                    "examples": {k: {"summary": v["summary"], "value": v["value"]} for k, v in example_sets.items()},
                }
            },
        }
    }


def request_models(book: Rulebook, max_variants: int) -> list[type[BaseModel]]:
    """Documentation models of the decision and compare bodies for this rulebook."""
    scheme_id: Any = Literal[tuple(sorted(book.schemes))]
    variant_id: Any = Literal[("baseline", *sorted(book.variants), *sorted(book.packages))]
    case_model = book.catalogue.model
    common: dict[str, Any] = {
        "scheme": (scheme_id, Field(description="Scheme id (GET /v1/schemes).")),
        "case": (case_model, Field(description="The case; its schema comes from rules/facts.yaml.")),
        "case_id": (
            str | None,
            Field(default=None, min_length=1, max_length=200, description="Ledger key (default: a hash of the case)."),
        ),
        "dry_run": (bool, Field(default=False, description="Read the quota ledger without taking a place.")),
    }
    decision = create_model(
        DECISION_BODY,
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [examples.DECISION_REQUEST]}),
        __doc__="The pinned decision request of the rule core.",
        variant=(
            variant_id | list[variant_id] | WhatIf,
            Field(default="baseline", description="A variant or package id, a list of ids, or an inline what-if."),
        ),
        **common,
    )
    compare = create_model(
        COMPARE_BODY,
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [examples.COMPARE_REQUEST]}),
        __doc__="One case (a decision request without `variant`) and the variants to decide it under.",
        variants=(
            list[variant_id | list[variant_id] | WhatIf],
            Field(min_length=1, max_length=max_variants, description=f"1 to {max_variants} variants."),
        ),
        **common,
    )
    return [decision, compare]


def install(app: FastAPI, book: Rulebook, *, max_variants: int, rules_dir: Any) -> None:
    """Replace `app.openapi` with a builder that adds the rule-derived body schemas and examples."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
        bodies: list[type[BaseModel]] = [*request_models(book, max_variants), ReleaseIn, KeyCreateIn]
        _, top = models_json_schema(
            [(m, "validation") for m in bodies],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(top.get("$defs", {}))
        _errors_are_error_bodies(schema)
        _decision_example(schema, rules_dir)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]


def _errors_are_error_bodies(schema: dict[str, Any]) -> None:
    """FastAPI documents its own 422 shape on routes with parameters; every error here is an
    ErrorBody (api.errors), so the document says so."""
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            answer = op.get("responses", {}).get("422")
            if answer is not None and "HTTPValidationError" in str(answer):
                op["responses"]["422"] = {
                    "description": "Malformed request: each problem names the field path and the reason.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                }
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)


def _decision_example(schema: dict[str, Any], rules_dir: Any) -> None:
    """The real answer to the worked example, as the 200 example of POST /v1/decisions.

    A rules copy without the example's scheme simply gets no response example (logged).
    """
    try:
        decision = kmrules.decide(examples.DECISION_REQUEST, rules_dir=rules_dir)
    except KmrulesError as exc:
        log.warning("no response example for POST /v1/decisions: %s", type(exc).__name__)
        return
    body = decision.model_dump(mode="json")
    body.update(
        id="0b6f3e9a-6d1c-4f57-9a43-2d6f1c8e7b10", created_at=dt.datetime(2023, 3, 15, 9, 30, tzinfo=dt.UTC).isoformat()
    )
    body["idempotent_replay"] = False
    op = schema.get("paths", {}).get("/v1/decisions", {}).get("post")
    if op is not None:
        op["responses"]["200"].setdefault("content", {}).setdefault("application/json", {})["example"] = body

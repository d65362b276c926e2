"""Response and request models of the HTTP API (documentation and output shape only).

Why request bodies that carry a case are *not* validated here: the rule core validates them
(kmrules.request) so a caller gets exactly the rule core's field paths and reasons. The
models below give the OpenAPI document its shapes and worked examples; `openapi.py` fills in
the case schema from the loaded rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api import examples
from kmrules.catalogue import VariantInfo
from kmrules.model import Decision
from kmrules.quota.models import Released, Usage


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionEnvelope(BaseModel):
    """Where the audit log keeps a decision: the fields DecisionOut adds to the rule core's."""

    id: str = Field(description="Audit-log id: GET /v1/decisions/{id} reads it back.")
    created_at: dt.datetime
    idempotent_replay: bool = Field(
        default=False, description="True when an Idempotency-Key retry returned the stored decision."
    )


class DecisionOut(Decision, DecisionEnvelope):
    """The rule core's decision plus where the audit log keeps it."""


class WhatIf(_Out):
    """An inline policy package: variants in order plus hypothetical parameter values."""

    base: str | list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    order_wins: bool = False


VariantSpec = str | list[str] | WhatIf


class SchemeOut(_Out):
    """A scheme with the JSON schema of its case."""

    id: str
    title: str
    description: str
    legal_basis: list[dict[str, Any]]
    criteria: list[str]
    amounts: list[str]
    case_schema: dict[str, Any] = Field(description="JSON schema of `case` in a decision request.")


class VariantDetail(VariantInfo):
    """A variant or package with what it changes."""

    legal_basis: list[dict[str, Any]] = Field(default_factory=list)
    parameter_changes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    scheme_changes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    quota_definitions: list[dict[str, Any]] = Field(default_factory=list)
    order_wins: bool = False


class ParameterOut(_Out):
    """One parameter's value on a date under a variant, with its references."""

    description: str
    value: Any
    unit: str | None
    type: str
    valid_from: dt.date | None
    valid_until: dt.date | None
    references: list[str]
    changed_by: list[str]


class ParametersOut(_Out):
    """Every parameter resolved for a date and a variant."""

    date: dt.date
    variant: str
    parameters: dict[str, ParameterOut]
    not_defined: dict[str, str] = Field(
        default_factory=dict, description="Parameters with no value on the date, and why."
    )


class RuleVersionOut(_Out):
    """One dated version of a criterion."""

    scheme: str
    source: str = Field(description="`baseline` or the id of the variant that adds or replaces it.")
    version: str | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    title: str
    legal_basis: list[dict[str, Any]]
    applies_when: dict[str, Any] | None
    holds_when: dict[str, Any]
    explain_pass: str
    explain_fail: str
    explain_not_applicable: str | None


class RuleOut(_Out):
    """A criterion: its title, legal basis, and every version (baseline and variants)."""

    id: str
    title: str
    schemes: list[str]
    legal_basis: list[dict[str, Any]]
    versions: list[RuleVersionOut]
    removed_by: list[str] = Field(default_factory=list, description="Variants that drop this criterion.")


class QuotaOut(_Out):
    """A quota or target figure as defined in a variant, with the places used per period."""

    id: str
    variant: str | None = None
    definition: dict[str, Any]
    usage: list[Usage]


class ReleaseIn(_Out):
    """Give back the place a case holds (a withdrawal)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [examples.RELEASE_REQUEST]})

    case_id: str = Field(min_length=1, max_length=200)


class ReleaseOut(_Out):
    """The places released."""

    released: list[Released]


class KeyCreateIn(_Out):
    """A new API key for a role."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [examples.KEY_REQUEST]})

    role: Literal["caseworker", "policy", "admin"]


class KeyOut(_Out):
    """A key record (the hash is never returned)."""

    id: str
    role: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class KeyCreated(KeyOut):
    """A new key: `key` is shown this once; only its hash is stored."""

    key: str


class Health(_Out):
    """Liveness and the loaded rules."""

    status: Literal["ok"]
    version: str
    schemes: list[str]
    database: str

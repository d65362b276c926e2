"""The shape of each kind of rule file, as strict pydantic models.

Unknown keys, wrong types and missing references are rejected here with the file,
line and reason; cross-file checks (dangling references, overlaps) are in `rulebook`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = float | int | str | bool | dt.date


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Reference(_Strict):
    """A source: a seed section, a public URL, or both; at least one."""

    seed: str | None = None
    url: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Reference:
        if not (self.seed or self.url):
            raise ValueError("a legal basis needs 'seed' (e.g. '§2.11') or 'url'")
        return self


class ParamValue(_Strict):
    """One dated value: valid from `from` (inclusive) to `until` (inclusive) or the next value."""

    valid_from: dt.date = Field(alias="from")
    until: dt.date | None = None
    value: Scalar
    reference: str = Field(min_length=1)


class ParamSpec(_Strict):
    """A named parameter: piecewise constant in time, every value with a reference."""

    description: str = Field(min_length=1)
    unit: str | None = None
    type: Literal["number", "integer", "date", "string", "bool"]
    values: list[ParamValue] = Field(min_length=1)


class ParameterFile(_Strict):
    """rules/parameters/*.yaml."""

    parameters: dict[str, ParamSpec]


class DerivedSpec(_Strict):
    """A derived fact: a registered function applied to facts, parameters or literals."""

    name: str
    fn: str
    args: list[dict[str, Any]]
    description: str = Field(min_length=1)


class CriterionSpec(_Strict):
    """One criterion of a scheme, in one dated version."""

    id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]*$")
    title: str = Field(min_length=1)
    version: str | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    legal_basis: list[Reference] = Field(min_length=1)
    applies_when: dict[str, Any] | None = None
    holds_when: dict[str, Any]
    explain_pass: str = Field(min_length=1)
    explain_fail: str = Field(min_length=1)
    explain_not_applicable: str | None = None


class AmountSpec(_Strict):
    """An amount reported with a decision (a date or a sum), computed from a derived fact."""

    id: str
    title: str = Field(min_length=1)
    fact: str
    unit: str
    applies_when: dict[str, Any] | None = None
    legal_basis: list[Reference] = Field(min_length=1)


class SchemeHeader(_Strict):
    """Who the scheme is for and where it comes from."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    legal_basis: list[Reference] = Field(min_length=1)


class SchemeFile(_Strict):
    """rules/schemes/*.yaml: one scheme as a list of criteria."""

    scheme: SchemeHeader
    derived: list[DerivedSpec] = []
    predicates: dict[str, dict[str, Any]] = {}
    criteria: list[CriterionSpec] = Field(min_length=1)
    amounts: list[AmountSpec] = []


class ParamOverride(_Strict):
    """How a variant changes a parameter: exactly one of set / values / scale / add / same_as."""

    set: Scalar | None = None
    values: list[ParamValue] | None = None
    scale: float | None = None
    add: float | None = None
    same_as: str | None = None
    round: int | None = None
    reference: str = Field(min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ParamOverride:
        given = [k for k in ("set", "values", "scale", "add", "same_as") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of set/values/scale/add/same_as, got {given or 'none'}")
        return self


class SchemeOverlay(_Strict):
    """What a variant does to one scheme's criteria."""

    remove: list[str] = []
    add: list[CriterionSpec] = []
    replace: list[CriterionSpec] = []
    predicates: dict[str, dict[str, Any]] = {}


class VariantHeader(_Strict):
    """A policy option in words a policy officer understands."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    seed_sections: list[str] = Field(min_length=1)
    legal_basis: list[Reference] = Field(min_length=1)
    expected_effect: Literal["fewer", "more", "same", "indirect"] | None = None


class VariantFile(_Strict):
    """rules/variants/*.yaml: an overlay on the baseline."""

    variant: VariantHeader
    parameters: dict[str, ParamOverride] = {}
    schemes: dict[str, SchemeOverlay] = {}
    quotas: list[dict[str, Any]] = []


class PackageHeader(_Strict):
    """Several variants applied together, in order."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    variants: list[str] = Field(min_length=1)
    order_wins: bool = False
    seed_sections: list[str] = []


class PackageFile(_Strict):
    """rules/packages/*.yaml."""

    package: PackageHeader

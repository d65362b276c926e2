"""Read-only views of the law as loaded: schemes, variants, parameters on a date, rules, measures.

Everything here reads the rulebook through kmrules (get_rulebook, list_variants, measures,
stack_for, resolve_param); nothing is computed that the rule core does not compute itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from api.auth import require
from api.context import AppContext, get_context
from api.errors import documented, invalid, not_found
from api.keystore import Principal
from api.schemas import (
    ParameterOut,
    ParametersOut,
    RuleOut,
    RuleVersionOut,
    SchemeOut,
    VariantDetail,
)
from kmrules.catalogue import Measure, VariantInfo, list_variants, measures
from kmrules.errors import ParameterNotDefinedError
from kmrules.overlay import resolve_param, stack_for
from kmrules.rulebook import Rulebook
from kmrules.rulefiles import CriterionSpec

router = APIRouter(prefix="/v1", tags=["law"])
Reader = Annotated[Principal, Depends(require("read"))]
Context = Annotated[AppContext, Depends(get_context)]


@router.get("/schemes", response_model=list[SchemeOut], responses=documented(401, 403))
def get_schemes(_: Reader, ctx: Context) -> list[SchemeOut]:
    """Every scheme, its criteria and the JSON schema of the case a decision request carries."""
    case_schema = ctx.case_schema
    return [
        SchemeOut(
            id=sid,
            title=s.scheme.title,
            description=s.scheme.description,
            legal_basis=[b.model_dump(exclude_none=True) for b in s.scheme.legal_basis],
            criteria=list(dict.fromkeys(c.id for c in s.criteria)),
            amounts=[a.id for a in s.amounts],
            case_schema=case_schema,
        )
        for sid, s in sorted(ctx.book.schemes.items())
    ]


@router.get("/variants", response_model=list[VariantInfo], responses=documented(401, 403))
def get_variants(_: Reader, ctx: Context) -> list[VariantInfo]:
    """The shipped variants and policy packages (the baseline, the law in force, is implied)."""
    return list_variants(ctx.rules_dir)


@router.get("/variants/{variant_id}", response_model=VariantDetail, responses=documented(401, 403, 404))
def get_variant(variant_id: str, _: Reader, ctx: Context) -> VariantDetail:
    """One variant or package: what it is for, and every parameter, criterion and quota it changes."""
    info = {v.id: v for v in list_variants(ctx.rules_dir)}
    found = info.get(variant_id)
    if found is None:
        raise not_found("variant", variant_id, sorted(info))
    base = found.model_dump()
    book = ctx.book
    if found.kind == "package":
        pkg = book.packages[variant_id].package
        return VariantDetail(**base, order_wins=pkg.order_wins)
    variant = book.variants[variant_id]
    return VariantDetail(
        **base,
        legal_basis=[b.model_dump(exclude_none=True) for b in variant.variant.legal_basis],
        parameter_changes={n: o.model_dump(mode="json", exclude_none=True) for n, o in variant.parameters.items()},
        scheme_changes={s: o.model_dump(mode="json", exclude_defaults=True) for s, o in variant.schemes.items()},
        quota_definitions=[dict(q) for q in variant.quotas],
    )


@router.get("/parameters", response_model=ParametersOut, responses=documented(401, 403, 404, 409, 422))
async def get_parameters(
    _: Reader,
    ctx: Context,
    date: Annotated[
        str | None,
        Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD the values are in force on (default: today)."),
    ] = None,
    variant: Annotated[
        str, Query(max_length=2000, description="A variant or package id, or several joined by commas.")
    ] = "baseline",
) -> ParametersOut:
    """Every parameter's value on a date under a variant, with its references and who changed it."""
    try:
        on = dt.date.fromisoformat(date) if date else dt.date.today()
    except ValueError as exc:
        raise invalid("query.date", f"not a date: {exc}") from exc
    return await run_in_threadpool(_parameters, ctx.book, on, variant)


def _parameters(book: Rulebook, on: dt.date, variant: str) -> ParametersOut:
    ids = [v.strip() for v in variant.split(",") if v.strip()] or ["baseline"]
    stack = stack_for(book, ids[0] if len(ids) == 1 else ids)
    values: dict[str, ParameterOut] = {}
    not_defined: dict[str, str] = {}
    for name, spec in sorted(book.parameters.items()):
        try:
            p = resolve_param(book, stack, name, on)
        except ParameterNotDefinedError as exc:
            not_defined[name] = str(exc)
            continue
        values[name] = ParameterOut(
            description=spec.description,
            value=p.value,
            unit=p.unit,
            type=spec.type,
            valid_from=p.valid_from,
            valid_until=p.valid_until,
            references=list(p.references),
            changed_by=list(p.changed_by),
        )
    return ParametersOut(date=on, variant=stack.label, parameters=values, not_defined=not_defined)


@router.get("/rules/{rule_id}", response_model=RuleOut, responses=documented(401, 403, 404))
def get_rule(rule_id: str, _: Reader, ctx: Context) -> RuleOut:
    """A criterion: title, legal basis and every dated version, in the baseline and in variants."""
    book = ctx.book
    versions: list[RuleVersionOut] = []
    removed_by: list[str] = []
    for sid, scheme in sorted(book.schemes.items()):
        versions += [_version(sid, "baseline", c) for c in scheme.criteria if c.id == rule_id]
    for vid, variant in sorted(book.variants.items()):
        for sid, overlay in sorted(variant.schemes.items()):
            versions += [_version(sid, vid, c) for c in (*overlay.replace, *overlay.add) if c.id == rule_id]
            if rule_id in overlay.remove:
                removed_by.append(vid)
    if not versions:
        raise not_found("rule", rule_id, _rule_ids(book))
    main = next((v for v in reversed(versions) if v.source == "baseline"), versions[-1])
    return RuleOut(
        id=rule_id,
        title=main.title,
        schemes=sorted({v.scheme for v in versions}),
        legal_basis=main.legal_basis,
        versions=versions,
        removed_by=removed_by,
    )


def _version(scheme: str, source: str, c: CriterionSpec) -> RuleVersionOut:
    return RuleVersionOut(
        scheme=scheme,
        source=source,
        version=c.version,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        title=c.title,
        legal_basis=[b.model_dump(exclude_none=True) for b in c.legal_basis],
        applies_when=c.applies_when,
        holds_when=c.holds_when,
        explain_pass=c.explain_pass,
        explain_fail=c.explain_fail,
        explain_not_applicable=c.explain_not_applicable,
    )


def _rule_ids(book: Rulebook) -> list[str]:
    ids = {c.id for s in book.schemes.values() for c in s.criteria}
    for variant in book.variants.values():
        for overlay in variant.schemes.values():
            ids |= {c.id for c in (*overlay.replace, *overlay.add)}
    return sorted(ids)


@router.get("/measures", response_model=list[Measure], responses=documented(401, 403))
def get_measures(_: Reader, ctx: Context) -> list[Measure]:
    """The catalogue of the 2023 labour-migration package: seed section, effect, figures, encoding."""
    return measures(ctx.rules_dir)

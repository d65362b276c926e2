"""What the rulebook offers a policy officer: the variants and packages, and the measures catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kmrules.decide import get_rulebook


class VariantInfo(BaseModel):
    """One variant or policy package, described for people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["variant", "package"]
    title: str
    description: str
    seed_sections: list[str]
    expected_effect: str | None = None
    variants: list[str] = Field(default_factory=list)
    schemes: list[str] = Field(default_factory=list)
    parameters: list[str] = Field(default_factory=list)
    quotas: list[str] = Field(default_factory=list)


class Figure(BaseModel):
    """A figure the seed quotes for a measure."""

    model_config = ConfigDict(extra="allow")

    value: Any
    unit: str | None = None
    meaning: str | None = None
    quote: str | None = None
    note: str | None = None


class Measure(BaseModel):
    """One section of the seed: track(s), expected effect, figures, and what encodes it."""

    model_config = ConfigDict(extra="allow")

    section: str
    title: str
    tracks: list[str]
    expected_effect: Literal["fewer", "more", "same", "indirect"]
    seed_wording: str
    figures: list[Figure] = Field(default_factory=list)
    encoded_by: list[str] = Field(default_factory=list)


def list_variants(rules_dir: str | Path | None = None) -> list[VariantInfo]:
    """Every shipped variant and package (the baseline is the law in force; it is not listed)."""
    book = get_rulebook(rules_dir)
    out = [
        VariantInfo(
            id=v.variant.id,
            kind="variant",
            title=v.variant.title,
            description=v.variant.description,
            seed_sections=list(v.variant.seed_sections),
            expected_effect=v.variant.expected_effect,
            schemes=sorted(
                set(v.schemes)
                | {q.get("scheme", "") for q in v.quotas} - {""}
                | {p.split(".")[0] for p in v.parameters}
            ),
            parameters=sorted(v.parameters),
            quotas=[str(q.get("id")) for q in v.quotas],
        )
        for v in book.variants.values()
    ]
    out += [
        VariantInfo(
            id=p.package.id,
            kind="package",
            title=p.package.title,
            description=p.package.description,
            seed_sections=list(p.package.seed_sections),
            variants=list(p.package.variants),
        )
        for p in book.packages.values()
    ]
    return sorted(out, key=lambda v: (v.kind, v.id))


def measures(rules_dir: str | Path | None = None) -> list[Measure]:
    """The catalogue rules/measures.yaml: every seed section 1.1-1.5 and 2.1-2.16."""
    return [Measure.model_validate(m) for m in get_rulebook(rules_dir).measures]

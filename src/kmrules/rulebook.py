"""Load the `rules/` directory into a validated Rulebook.

Everything that can be wrong with the law as data is found here, at load time, with
file, line and reason: unknown keys, wrong types, dangling references, overlapping
validity, values without a reference, unknown derived functions, predicate cycles.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from kmrules import conditions as cond
from kmrules.derive import REGISTRY
from kmrules.errors import Problem, RuleFileError
from kmrules.facts import FactCatalogue, build_model, parse_catalogue
from kmrules.rulefiles import (
    CriterionSpec,
    PackageFile,
    ParameterFile,
    ParamSpec,
    ParamValue,
    SchemeFile,
    VariantFile,
)
from kmrules.yamlsource import line_of, load_yaml_file

if TYPE_CHECKING:
    from kmrules.overlay import VariantStack

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent.parent / "rules"
M = TypeVar("M", bound=BaseModel)


@dataclass
class Rulebook:
    """The whole law as loaded: facts, parameters, schemes, variants, packages, measures."""

    root: Path
    catalogue: FactCatalogue
    parameters: dict[str, ParamSpec]
    schemes: dict[str, SchemeFile]
    variants: dict[str, VariantFile]
    packages: dict[str, PackageFile]
    measures: list[dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)  # object id -> file
    named_stacks: dict[str, VariantStack] = field(default_factory=dict, repr=False, compare=False)
    """Variant stacks of plain ids, built once (overlay.stack_for): a counterfactual asks for
    every shipped variant on every refusal."""

    def scheme(self, scheme_id: str) -> SchemeFile:
        """The scheme, or UnknownSchemeError listing the known ones."""
        from kmrules.errors import UnknownSchemeError

        if scheme_id not in self.schemes:
            raise UnknownSchemeError(scheme_id, sorted(self.schemes))
        return self.schemes[scheme_id]


def _validate(model: type[M], data: Any, source: str, problems: list[Problem]) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = line_of(data, loc)
            where = f"{source}:{line}" if line else source
            path = ".".join(str(p) for p in loc)
            problems.append(Problem(f"{where}: {path}", err["msg"]))
        return None


def _load_files(
    folder: Path,
    model: type[M],
    id_of: Callable[[M], str],
    kind: str,
    taken: set[str],
    sources: dict[str, str],
    problems: list[Problem],
) -> dict[str, M]:
    """Load every file of one kind; an id used twice (or already taken) is a problem."""
    loaded: dict[str, M] = {}
    for path in _yaml_files(folder):
        item = _validate(model, load_yaml_file(path), str(path), problems)
        if item is None:
            continue
        ident = id_of(item)
        if ident in loaded or ident in taken:
            problems.append(Problem(str(path), f"{kind} id {ident!r} is taken"))
        loaded[ident] = item
        sources[f"{kind}:{ident}"] = str(path)
    return loaded


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def load_rulebook(root: Path | str | None = None) -> Rulebook:
    """Read and validate every rule file under `root`; RuleFileError lists every problem found."""
    base = Path(root) if root is not None else DEFAULT_RULES_DIR
    problems: list[Problem] = []
    if not (base / "facts.yaml").is_file():
        raise RuleFileError([Problem(str(base), "not a rules directory (no facts.yaml)")])

    facts, fact_problems = parse_catalogue(load_yaml_file(base / "facts.yaml"), str(base / "facts.yaml"))
    problems += fact_problems

    parameters: dict[str, ParamSpec] = {}
    sources: dict[str, str] = {}
    for path in _yaml_files(base / "parameters"):
        pfile = _validate(ParameterFile, load_yaml_file(path), str(path), problems)
        for name, spec in (pfile.parameters if pfile else {}).items():
            if name in parameters:
                problems.append(Problem(str(path), f"parameter {name!r} already defined in {sources['param:' + name]}"))
            parameters[name] = spec
            sources["param:" + name] = str(path)
            problems += _check_param_values(name, spec.type, spec.values, str(path))

    schemes = _load_files(base / "schemes", SchemeFile, lambda f: f.scheme.id, "scheme", set(), sources, problems)
    variants = _load_files(
        base / "variants", VariantFile, lambda f: f.variant.id, "variant", {"baseline"}, sources, problems
    )
    packages = _load_files(
        base / "packages", PackageFile, lambda f: f.package.id, "package", {"baseline", *variants}, sources, problems
    )

    measures: list[dict[str, Any]] = []
    if (base / "measures.yaml").is_file():
        data = load_yaml_file(base / "measures.yaml")
        if not isinstance(data, dict) or not isinstance(data.get("measures"), list):
            problems.append(Problem(str(base / "measures.yaml"), "expected a top-level 'measures' list"))
        else:
            measures = data["measures"]

    book = Rulebook(
        base, FactCatalogue(facts, build_model(facts)), parameters, schemes, variants, packages, measures, sources
    )
    if not problems:
        problems += check_cross_references(book)
    if problems:
        raise RuleFileError(problems)
    return book


def _check_param_values(name: str, ptype: str, values: Iterable[ParamValue], source: str) -> list[Problem]:
    """Dated values must not overlap and must match the parameter's type."""
    problems: list[Problem] = []
    ordered = sorted(values, key=lambda v: v.valid_from)
    for value in ordered:
        if not _type_ok(ptype, value.value):
            problems.append(
                Problem(f"{source}: {name}", f"value {value.value!r} from {value.valid_from} is not of type {ptype}")
            )
        if value.until is not None and value.until < value.valid_from:
            problems.append(Problem(f"{source}: {name}", f"'until' {value.until} is before 'from' {value.valid_from}"))
    for prev, nxt in itertools.pairwise(ordered):
        if prev.valid_from == nxt.valid_from or (prev.until is not None and prev.until >= nxt.valid_from):
            problems.append(
                Problem(
                    f"{source}: {name}",
                    f"overlapping validity: value from {prev.valid_from} overlaps value from {nxt.valid_from}",
                )
            )
    return problems


def _type_ok(ptype: str, value: Any) -> bool:
    if ptype == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ptype == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if ptype == "date":
        return isinstance(value, dt.date)
    if ptype == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


def type_context(book: Rulebook, scheme: SchemeFile, predicates: dict[str, Any] | None = None) -> cond.TypeContext:
    """What conditions of this scheme may name: case facts, its derived facts, parameters, predicates."""
    fact_types: dict[str, str] = {p: s.type for p, s in book.catalogue.facts.items()}
    for derived in scheme.derived:
        fn = REGISTRY.get(derived.fn)
        fact_types[derived.name] = fn.result_type if fn else "unknown"
    enums = {p: s.values for p, s in book.catalogue.facts.items() if s.type == "enum"}
    return cond.TypeContext(
        fact_types=fact_types,
        param_types={n: p.type for n, p in book.parameters.items()},
        predicates=predicates if predicates is not None else scheme.predicates,
        enum_values=enums,
    )


def check_derived(book: Rulebook, scheme: SchemeFile, source: str) -> list[Problem]:
    """Derived facts: known function, right number and types of arguments, no name clash."""
    problems: list[Problem] = []
    known: dict[str, str] = {p: s.type for p, s in book.catalogue.facts.items()}
    for derived in scheme.derived:
        where = f"{source}: derived {derived.name}"
        fn = REGISTRY.get(derived.fn)
        if derived.name in known:
            problems.append(Problem(where, "name clashes with another fact"))
        if fn is None:
            problems.append(Problem(where, f"unknown function {derived.fn!r}; known: {sorted(REGISTRY)}"))
            continue
        if len(derived.args) != len(fn.arg_types):
            problems.append(
                Problem(where, f"{derived.fn} takes {len(fn.arg_types)} arguments, got {len(derived.args)}")
            )
        for arg, want_raw in zip(derived.args, fn.arg_types, strict=False):
            want = want_raw.rstrip("?")
            got = _arg_type(arg, known, book)
            if got is None:
                problems.append(Problem(where, f"argument {arg!r} is not a known fact, parameter or literal"))
            elif not (got == want or ({got, want} <= {"number", "integer"} and want == "number")):
                problems.append(Problem(where, f"argument {arg!r} is {got}, {derived.fn} needs {want}"))
        known[derived.name] = fn.result_type
    return problems


def _arg_type(arg: dict[str, Any], known: dict[str, str], book: Rulebook) -> str | None:
    if set(arg) == {"fact"}:
        return known.get(arg["fact"])
    if set(arg) == {"param"}:
        spec = book.parameters.get(arg["param"])
        return spec.type if spec else None
    if set(arg) == {"value"}:
        value = arg["value"]
        for ptype in ("bool", "integer", "number", "date", "string"):
            if _type_ok(ptype, value):
                return ptype
    return None


def check_criteria(
    book: Rulebook, scheme: SchemeFile, criteria: list[CriterionSpec], predicates: dict[str, Any], source: str
) -> list[Problem]:
    """Conditions parse and type-check, predicates have no cycle, dated versions do not overlap."""
    problems: list[Problem] = []
    ctx = type_context(book, scheme, predicates)
    parsed_preds = {
        name: cond.parse(body, f"{source}: predicate {name}", ctx, problems) for name, body in predicates.items()
    }
    for name, body in parsed_preds.items():
        try:
            cond.inline(body, parsed_preds, (name,))
        except ValueError as exc:
            problems.append(Problem(f"{source}: predicate {name}", str(exc)))
    by_id: dict[str, list[CriterionSpec]] = {}
    for crit in criteria:
        where = f"{source}: criterion {crit.id}"
        if crit.applies_when is not None:
            cond.parse(crit.applies_when, where + ".applies_when", ctx, problems)
        cond.parse(crit.holds_when, where + ".holds_when", ctx, problems)
        for text in (crit.explain_pass, crit.explain_fail, crit.explain_not_applicable or ""):
            problems += _check_template(text, where)
        by_id.setdefault(crit.id, []).append(crit)
    for crit_id, versions in by_id.items():
        ordered = sorted(versions, key=lambda c: c.valid_from or dt.date.min)
        for prev, nxt in itertools.pairwise(ordered):
            prev_end = prev.valid_until or dt.date.max
            if prev_end >= (nxt.valid_from or dt.date.min):
                problems.append(
                    Problem(
                        f"{source}: criterion {crit_id}",
                        f"overlapping validity of versions {prev.version!r} and {nxt.version!r}",
                    )
                )
    return problems


_PLACEHOLDERS = {"observed", "required", "title"}


def _check_template(text: str, where: str) -> list[Problem]:
    import string

    names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    unknown = names - _PLACEHOLDERS
    return (
        [Problem(where, f"explanation uses unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(_PLACEHOLDERS)}")]
        if unknown
        else []
    )


def check_cross_references(book: Rulebook) -> list[Problem]:
    """Every scheme, variant and package is checked against the catalogue and the parameters."""
    from kmrules.overlay import check_variants

    problems: list[Problem] = []
    for scheme_id, scheme in book.schemes.items():
        source = book.sources["scheme:" + scheme_id]
        problems += check_derived(book, scheme, source)
        problems += check_criteria(book, scheme, list(scheme.criteria), dict(scheme.predicates), source)
        ctx = type_context(book, scheme)
        for amount in scheme.amounts:
            if amount.fact not in ctx.fact_types:
                problems.append(Problem(f"{source}: amount {amount.id}", f"unknown fact {amount.fact!r}"))
            if amount.applies_when is not None:
                cond.parse(amount.applies_when, f"{source}: amount {amount.id}.applies_when", ctx, problems)
    problems += check_variants(book)
    problems += _check_measures(book)
    return problems


def _check_measures(book: Rulebook) -> list[Problem]:
    """Every measure names its section, effect and tracks; `encoded_by` names real rules."""
    from kmrules.catalogue import Measure

    source = str(book.root / "measures.yaml")
    known = set(book.schemes) | set(book.variants) | set(book.packages)
    problems: list[Problem] = []
    for i, raw in enumerate(book.measures):
        try:
            measure = Measure.model_validate(raw)
        except ValidationError as exc:
            problems += [
                Problem(f"{source}: measures[{i}].{'.'.join(map(str, e['loc']))}", e["msg"]) for e in exc.errors()
            ]
            continue
        for ref in measure.encoded_by:
            if ref not in known:
                problems.append(
                    Problem(f"{source}: measures[{i}] (§{measure.section})", f"dangling reference: encoded_by {ref!r}")
                )
    return problems

"""The loader rejects bad rule files with file, location and reason."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kmrules.errors import RuleFileError
from kmrules.rulebook import DEFAULT_RULES_DIR, load_rulebook


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture text not found in {path.name}: {old!r}"
    path.write_text(text.replace(old, new, 1))


def _expect_error(root: Path, *fragments: str) -> str:
    with pytest.raises(RuleFileError) as info:
        load_rulebook(root)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_shipped_rules_load() -> None:
    book = load_rulebook()
    assert {"knowledge_migrant", "eu_blue_card"} <= set(book.schemes)


KM = "schemes/knowledge_migrant.yaml"
PARAMS = "parameters/knowledge_migrant.yaml"

BAD_EDITS: list[tuple[str, str, str, str, tuple[str, ...]]] = [
    (
        "unknown key",
        KM,
        "    title: The salary is market-conform\n",
        "    title: The salary is market-conform\n    colour: red\n",
        ("knowledge_migrant.yaml", "colour", "Extra inputs are not permitted"),
    ),
    (
        "dangling predicate",
        KM,
        "{ref: salary_criterion_applies}\n    holds_when: {fact: job.market_conform",
        "{ref: no_such_predicate}\n    holds_when: {fact: job.market_conform",
        ("dangling reference", "no_such_predicate"),
    ),
    (
        "dangling parameter",
        KM,
        "gte: {param: knowledge_migrant.salary.reduced}",
        "gte: {param: knowledge_migrant.salary.typo}",
        ("dangling reference", "knowledge_migrant.salary.typo"),
    ),
    (
        "unknown fact",
        KM,
        "holds_when: {fact: job.market_conform, eq: true}",
        "holds_when: {fact: job.market_conformity, eq: true}",
        ("unknown fact", "job.market_conformity"),
    ),
    (
        "wrong literal type",
        KM,
        "holds_when: {fact: job.market_conform, eq: true}",
        "holds_when: {fact: job.market_conform, eq: 'yes'}",
        ("wrong type", "job.market_conform"),
    ),
    (
        "ordering on a bool",
        KM,
        "holds_when: {fact: job.market_conform, eq: true}",
        "holds_when: {fact: job.market_conform, gte: true}",
        ("needs a number or date",),
    ),
    (
        "unknown enum value",
        KM,
        "in: [scientific_researcher, phd_researcher",
        "in: [scientist, phd_researcher",
        ("'scientist' is not a value of job.position",),
    ),
    (
        "value without reference",
        PARAMS,
        '- {from: 2022-01-01, value: 4840, reference: "https://www.dirkzwager.nl/kennis/artikelen/indexatie-normbedragen-kennismigranten-en-houders-eu-blauwe-kaart/"}',
        "- {from: 2022-01-01, value: 4840}",
        ("knowledge_migrant.yaml", "reference", "Field required"),
    ),
    (
        "overlapping validity",
        PARAMS,
        "- {from: 2022-01-01, value: 4840,",
        "- {from: 2021-01-01, value: 4840,",
        ("overlapping validity",),
    ),
    (
        "until overlaps next",
        PARAMS,
        "- {from: 2021-01-01, value: 4752,",
        "- {from: 2021-01-01, until: 2022-03-01, value: 4752,",
        ("overlapping validity",),
    ),
    ("parameter of wrong type", PARAMS, "value: 4840,", "value: '4840',", ("is not of type number",)),
    ("unknown derived function", KM, "fn: age_on\n", "fn: age_at\n", ("unknown function 'age_at'",)),
    (
        "derived argument type",
        KM,
        "args: [{fact: applicant.birth_date}, {fact: application_date}]",
        "args: [{fact: applicant.birth_date}, {fact: job.gross_monthly_salary}]",
        ("needs date",),
    ),
    (
        "unknown placeholder",
        KM,
        "explain_fail: The salary is not market-conform",
        "explain_fail: The salary {salary} is not market-conform",
        ("unknown placeholder", "salary"),
    ),
    (
        "duplicate key",
        KM,
        "    title: The salary is market-conform\n",
        "    title: The salary is market-conform\n    title: twice\n",
        ("duplicate key 'title'",),
    ),
    (
        "predicate cycle",
        KM,
        "  salary_criterion_applies:\n    all: [{not: {ref: exempt_position}}]",
        "  salary_criterion_applies:\n    all: [{not: {ref: salary_criterion_applies}}]",
        ("reference cycle",),
    ),
    ("syntax error", KM, "criteria:\n", "criteria:\n  - [unclosed\n", ("YAML syntax",)),
    (
        "missing legal basis",
        KM,
        '  - id: KM-MARKET-CONFORM\n    title: The salary is market-conform\n    legal_basis:\n      - {url: "https://maeslaw.nl/blog/normbedragen-inkomenseis-2023-voor-kennismigranten-en-blue-card-houders"}\n',
        "  - id: KM-MARKET-CONFORM\n    title: The salary is market-conform\n    legal_basis: []\n",
        ("legal_basis",),
    ),
]


@pytest.mark.parametrize(("label", "file", "old", "new", "fragments"), BAD_EDITS, ids=[e[0] for e in BAD_EDITS])
def test_bad_rule_file_is_rejected(
    rules_copy: Path, label: str, file: str, old: str, new: str, fragments: tuple[str, ...]
) -> None:
    _edit(rules_copy / file, old, new)
    _expect_error(rules_copy, *fragments)


def test_error_names_the_line(rules_copy: Path) -> None:
    path = rules_copy / KM
    _edit(
        path, "    title: The salary is market-conform\n", "    title: The salary is market-conform\n    colour: red\n"
    )
    line = path.read_text().splitlines().index("    colour: red") + 1
    _expect_error(rules_copy, f"knowledge_migrant.yaml:{line}")


def test_not_a_rules_directory(tmp_path: Path) -> None:
    _expect_error(tmp_path, "no facts.yaml")


MutateVariant = Callable[[Path], None]


def test_variant_with_dangling_parameter(rules_copy: Path) -> None:
    (rules_copy / "variants" / "bad.yaml").write_text(
        "variant: {id: bad, title: Bad, description: d, seed_sections: ['2.11'], legal_basis: [{seed: '§2.11'}]}\n"
        "parameters:\n  knowledge_migrant.salary.nope: {scale: 1.1, reference: 'seed §2.11'}\n"
    )
    _expect_error(rules_copy, "bad.yaml", "knowledge_migrant.salary.nope", "dangling reference")

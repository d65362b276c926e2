"""simulate_quota: a population decided under a variant, allocated in application-date order.

The populations are small enough to work out the fill dates and refusals by hand.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from service_helpers import km_request, make_rules_dir

from kmrules.decide import Backend
from kmrules.simulate_quota import simulate_quota


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rules_dir(tmp_path_factory.mktemp("simulate"))


def _sector(day: int) -> str:
    return ["ict", "finance", "research"][day % 3]


def january(days: range) -> list[dict[str, Any]]:
    """One application a day; every fifth day's salary is too low for the criteria."""
    return [
        km_request(
            "baseline",
            case_id=f"jan-{day}",
            on=date(2024, 1, day).isoformat(),
            salary=3000 if day % 5 == 0 else 6000,
            sector=_sector(day),
        )
        for day in days
    ]


@pytest.mark.parametrize("backend", ["oracle", "durable"])
def test_fill_date_and_refusals_by_sector(rules_dir: Path, backend: Backend) -> None:
    # Sector of day d: ict if d % 3 == 0, finance if 1, research if 2. Granted by the criteria:
    # every day but 5, 10, 15, ... The 10 places go to days 1-4, 6-9, 11 and 12 (ict 3, 6, 9, 12;
    # finance 1, 4, 7; research 2, 8, 11), so the first refusal (the date the quota is full) is
    # 13 January. Days 13-30 bring 14 more granted cases, all refused: ict 18, 21, 24, 27;
    # finance 13, 16, 19, 22, 28; research 14, 17, 23, 26, 29.
    population = list(reversed(january(range(1, 31))))  # input order must not matter
    report = simulate_quota(population, "test_quota_10", rules_dir=rules_dir, backend=backend)
    assert (report.cases, report.granted_by_rules, report.granted, report.refused_by_quota) == (30, 24, 10, 14)
    (q10,) = report.quotas
    assert (q10.quota_id, q10.kind, q10.limit, q10.taken, q10.refused) == ("q10", "quota", 10, 10, 14)
    assert q10.filled_on == date(2024, 1, 13)
    assert q10.refused_by_segment["job.sector"] == {"ict": 4, "finance": 5, "research": 5}
    assert q10.taken_by_segment["job.sector"] == {"ict": 4, "finance": 3, "research": 3}
    assert q10.refused_by_segment["scheme"] == {"knowledge_migrant": 14}
    assert [(p.period_key, p.limit, p.taken, p.refused, p.filled_on) for p in q10.periods] == [
        ("2024", 10, 10, 14, date(2024, 1, 13))
    ]


def test_several_quotas_a_target_and_another_scheme(rules_dir: Path) -> None:
    def case(case_id: str, day: int, sector: str, **kw: Any) -> dict[str, Any]:
        return km_request("baseline", case_id=case_id, on=date(2024, 1, day).isoformat(), sector=sector, **kw)

    blue_card = case("c5", 6, "ict", salary=7000)
    blue_card["scheme"] = "eu_blue_card"  # granted, but a knowledge-migrant quota does not count it
    population = [
        case("c8", 9, "ict"),
        case("c1", 2, "ict"),
        case("c2", 3, "finance", salary=3000),  # refused by the criteria
        case("c3", 4, "ict"),  # q_ict_1 is full: refused, and takes no q3 place either
        case("c4", 5, "finance"),
        blue_card,
        case("c6", 7, "research"),  # q3 is now full
        case("c7", 8, "finance"),  # refused by q3
    ]
    variant = ["test_quota_3", "test_quota_ict_1", "test_target_2"]
    report = simulate_quota(population, variant, rules_dir=rules_dir)
    assert (report.cases, report.granted_by_rules, report.granted, report.refused_by_quota) == (8, 7, 4, 3)
    by_id = {q.quota_id: q for q in report.quotas}

    q3 = by_id["q3"]
    assert (q3.taken, q3.refused, q3.filled_on) == (3, 2, date(2024, 1, 8))
    assert q3.taken_by_segment["job.sector"] == {"ict": 1, "finance": 1, "research": 1}
    assert q3.refused_by_segment["job.sector"] == {"finance": 1, "ict": 1}  # c7, c8

    ict = by_id["q_ict_1"]
    assert (ict.taken, ict.refused, ict.filled_on) == (1, 2, date(2024, 1, 4))  # c3, c8
    assert ict.refused_by_segment["job.sector"] == {"ict": 2}

    target = by_id["t2"]  # counts c1, c4, c6: exceeded on 7 January, refuses nobody
    assert (target.kind, target.taken, target.refused, target.exceeded_by) == ("target", 3, 0, 1)
    assert target.filled_on == date(2024, 1, 7)
    assert target.taken_by_segment["scheme"] == {"knowledge_migrant": 3}


def test_a_variant_without_quotas_refuses_nobody(rules_dir: Path) -> None:
    report = simulate_quota(january(range(1, 11)), "baseline", rules_dir=rules_dir)
    assert (report.granted_by_rules, report.granted, report.refused_by_quota, report.quotas) == (8, 8, 0, [])


def test_the_shipped_quota_variant_loads_and_counts_first_admissions_only() -> None:
    extension = km_request("baseline", case_id="ext", kind="extension")
    extension["case"]["applicant"]["first_admission"] = {"date": "2022-03-01", "criterion": "age_30_plus"}
    population = [km_request("baseline", case_id="first"), extension]
    report = simulate_quota(population, ["km_quota_2024", "km_target_2024"])
    by_id = {q.quota_id: q for q in report.quotas}
    assert report.granted == 2
    assert (by_id["km_quota_2024"].taken, by_id["km_quota_2024"].limit) == (1, 22000)
    assert by_id["km_target_2024"].periods[0].period_key == "2024-Q1"
    assert by_id["km_target_2024"].periods[0].limit == 5500

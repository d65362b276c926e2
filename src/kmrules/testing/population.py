"""A reproducible synthetic population of applications, for direction checks and benchmarks.

Not real data: dates, ages and salaries are spread uniformly over plausible ranges so that
every criterion, category and year is exercised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np


def synthetic_population(
    n: int, seed: int = 7, schemes: tuple[str, ...] = ("knowledge_migrant", "eu_blue_card")
) -> list[dict[str, Any]]:
    """`n` valid, complete requests spread over 2021-2026, cycling through `schemes`."""
    rng = np.random.default_rng(seed)
    start = dt.date(2021, 1, 1).toordinal()
    out = []
    for i in range(n):
        on = dt.date.fromordinal(start + int(rng.integers(0, 6 * 365)))
        birth = dt.date.fromordinal(on.toordinal() - int(rng.integers(20 * 365, 55 * 365)))
        grad = dt.date.fromordinal(on.toordinal() - int(rng.integers(100, 15 * 365)))
        case = {
            "application_date": on.isoformat(),
            "application_kind": ["first", "extension", "change_of_employer"][int(rng.integers(0, 3))],
            "applicant": {
                "birth_date": birth.isoformat(),
                "nationality": ["IN", "TR", "US", "CN"][int(rng.integers(0, 4))],
                "graduation": {
                    "date": grad.isoformat(),
                    "country": ["NL", "IN"][int(rng.integers(0, 2))],
                    "level": ["bachelor", "master", "phd"][int(rng.integers(0, 3))],
                    "top200": bool(rng.integers(0, 2)),
                },
                "search_year_permit": {"held": bool(rng.integers(0, 2)), "end_date": on.isoformat()},
                "first_admission": {
                    "date": grad.isoformat(),
                    "criterion": ["under_30", "age_30_plus", "reduced"][int(rng.integers(0, 3))],
                },
                "relevant_experience_years": float(rng.integers(0, 10)),
            },
            "employer": {"recognised_sponsor": bool(rng.random() < 0.9)},
            "job": {
                "gross_monthly_salary": float(rng.integers(2000, 7000)),
                "position": "regular",
                "sector": ["ict", "technical", "finance"][int(rng.integers(0, 3))],
                "contract_months": int(rng.integers(3, 36)),
                "market_conform": bool(rng.random() < 0.95),
            },
        }
        out.append({"scheme": schemes[i % len(schemes)], "case": case})
    return out

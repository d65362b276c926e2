"""Worked examples for the OpenAPI document (each one is sent by the tests, so none can rot)."""

from __future__ import annotations

from typing import Any

DECISION_REQUEST: dict[str, Any] = {
    "scheme": "knowledge_migrant",
    "variant": "baseline",
    "case": {
        "application_date": "2023-03-15",
        "application_kind": "first",
        "applicant": {
            "birth_date": "1991-01-10",
            "nationality": "IN",
            "graduation": {"date": "2014-07-01", "country": "IN", "level": "master", "top200": False},
            "search_year_permit": {"held": False},
        },
        "employer": {"recognised_sponsor": True},
        "job": {
            "gross_monthly_salary": 5100,
            "position": "regular",
            "sector": "ict",
            "occupation": "software engineer",
            "contract_months": 24,
            "market_conform": True,
        },
        "employment_end_date": None,
        "permit_expiry_date": None,
    },
}
"""A 32-year-old software engineer, first application in March 2023: granted."""

DECISION_REQUEST_REFUSED: dict[str, Any] = {
    **DECISION_REQUEST,
    "case": {**DECISION_REQUEST["case"], "job": {**DECISION_REQUEST["case"]["job"], "gross_monthly_salary": 4000}},
}
"""The same case one salary band lower: refused on the salary criterion."""

COMPARE_REQUEST: dict[str, Any] = {
    "scheme": "knowledge_migrant",
    "case": DECISION_REQUEST["case"],
    "variants": ["baseline"],
}
"""One case under several variants; `variants` lists ids, id lists or inline what-if packages."""

COMPARE_WHAT_IF: dict[str, Any] = {
    **COMPARE_REQUEST,
    "variants": ["baseline", {"base": [], "parameters": {"knowledge_migrant.salary.age_30_plus": 5500}}],
}
"""The baseline against a what-if that raises the 30+ salary criterion to EUR 5,500."""

RELEASE_REQUEST: dict[str, Any] = {"case_id": "case-2024-000123"}

KEY_REQUEST: dict[str, Any] = {"role": "caseworker"}

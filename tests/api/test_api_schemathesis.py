"""Schemathesis against /openapi.json (ASGI, admin key): zero 5xx, every response matches the schema.

Bounded: at most MAX_EXAMPLES generated cases per operation (plus the documented examples and
schemathesis' coverage cases), derandomised so CI runs are repeatable. Checks: no server error,
documented status code, documented content type, response body valid against its schema.

Also `negative_data_rejection`: a request that violates the documented schema (a number for a
date, an unknown query parameter, a wrong inline package) must be rejected.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from api_helpers import SMALL_QUOTA_LIMIT, make_rules_copy
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.settings import Settings
from kmrules.store.database import default_sqlite_url

MAX_EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


# Built at import: schemathesis' pytest integration parametrizes at collection time (its
# fixture-based lazy loader does not work with this pytest), so the app exists before fixtures.
_TMP = tempfile.TemporaryDirectory(prefix="kmrules-fuzz-")
_DATA = Path(_TMP.name) / "data"
APP = create_app(
    Settings(
        database_url=default_sqlite_url(_DATA),
        data_dir=_DATA,
        rules_dir=make_rules_copy(Path(_TMP.name), SMALL_QUOTA_LIMIT),
    )
)
ADMIN_KEY = APP.state.ctx.keys.create("admin")[0]
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, config=schemathesis.Config.from_dict({"generation": {"max-examples": MAX_EXAMPLES}})
)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_openapi_conformance(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)

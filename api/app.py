"""The FastAPI application factory.

`create_app(settings)` loads and validates the rules first, so a broken rule file stops the
server at start-up (never a 500 at request time), then opens the database (migrating it),
and wires routes, error handlers, middleware and the OpenAPI document.
`app_from_env()` is the same for uvicorn's multi-process mode, where every worker imports
the app by name and rebuilds its settings from the KMRULES_* variables `kmrules serve` set.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

import kmrules
from api import errors, openapi
from api import logging as api_logging
from api.context import AppContext
from api.fastpath import DirectRouteMiddleware
from api.keystore import KeyStore
from api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from api.query import reject_unknown_query
from api.routes_admin import router as admin_router
from api.routes_catalogue import router as catalogue_router
from api.routes_decisions import router as decisions_router
from api.routes_quotas import router as quotas_router
from api.settings import Settings
from kmrules.service import DecisionService
from kmrules.store.database import make_engine


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; raises RuleFileError (bad rules) or a database error before serving."""
    settings = settings or Settings.resolve()
    api_logging.configure(settings.log_level)
    book = kmrules.get_rulebook(settings.rules_dir)
    service = DecisionService(database_url=settings.database_url, rules_dir=settings.rules_dir)
    engine = make_engine(settings.database_url, pool_size=2, max_overflow=8)
    ctx = AppContext(
        settings=settings,
        book=book,
        service=service,
        keys=KeyStore(engine, ttl_seconds=settings.key_cache_seconds),
        engine=engine,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()
        engine.dispose()

    app = FastAPI(
        title="kmrules",
        version=kmrules.__version__,
        lifespan=lifespan,
        # see Settings.telemetry; {} keeps FastAPI's defaults (all on)
        telemetry={} if settings.telemetry else {"tracing": False, "metrics": False, "logs": False},
        dependencies=[Depends(reject_unknown_query)],
        openapi_tags=[
            {"name": "decisions", "description": "Decide, read back, compare variants."},
            {"name": "law", "description": "Schemes, variants, parameters, rules and measures as loaded."},
            {"name": "quotas", "description": "Quota and target figures and their ledger."},
            {"name": "admin", "description": "Health and API keys."},
        ],
    )
    app.state.ctx = ctx
    errors.install(app)
    for router in (decisions_router, catalogue_router, quotas_router, admin_router):
        app.include_router(router)
    # innermost: the hot route straight to its endpoint (see api/fastpath.py)
    app.add_middleware(
        DirectRouteMiddleware, fastapi_app=app, router=decisions_router, method="POST", path="/v1/decisions"
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)  # added last = outermost: ids even for 413s
    openapi.install(app, book, max_variants=settings.max_compare_variants, rules_dir=settings.rules_dir)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (`api.app:app_from_env`): settings from the KMRULES_* environment.

    What is loaded now (rules, compiled rulesets, schemas) lives as long as the server
    process, so it is frozen out of the garbage collector: each full collection scanned those
    ~100,000 objects and held every request in flight for ~50 ms. The log records skip
    the caller lookup the JSON lines never print."""
    app = create_app(Settings.resolve())
    gc.collect()
    gc.freeze()
    # Our JSON lines carry no source file, line, thread or process fields, so the logging
    # module need not look them up for every record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return app

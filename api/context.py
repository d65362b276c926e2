"""What every route needs, built once per process by `create_app` and hung on `app.state`."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Request
from sqlalchemy import Engine

from api.keystore import KeyStore
from api.settings import Settings
from kmrules.rulebook import Rulebook
from kmrules.service import DecisionService

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class AppContext:
    """Settings, the loaded rulebook, the decision service (ledger + audit) and the key store."""

    settings: Settings
    book: Rulebook
    service: DecisionService
    keys: KeyStore
    engine: Engine
    _limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False, compare=False
    )

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a decision or release (rules, ledger and audit, one transaction), or the key
        lookup in front of one.

        With `settings.write_concurrency` 0 (the default) it runs here, on the event loop, to
        completion; with N > 0, in the thread pool, at most N at a time per process. See
        Settings.write_concurrency for why the loop is the default."""
        if self.settings.write_concurrency == 0:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = CapacityLimiter(self.settings.write_concurrency)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)

    @property
    def rules_dir(self) -> Path | None:
        """The rules directory every kmrules call of this app uses."""
        return self.settings.rules_dir

    @cached_property
    def case_schema(self) -> dict[str, Any]:
        """JSON schema of a decision request's `case` (built from rules/facts.yaml)."""
        return self.book.catalogue.model.model_json_schema()


def get_context(request: Request) -> AppContext:
    """The app's context (a FastAPI dependency)."""
    ctx = request.app.state.ctx
    assert isinstance(ctx, AppContext)
    return ctx

"""Run one piece of work on many threads released at the same instant (for the quota races)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def all_at_once(work: Callable[[int], T], n: int) -> list[T]:
    """Call `work(i)` for i in 0..n-1, each on its own thread, all started by one barrier.

    Returns the results in completion order; raises the first error any thread hit, so a
    race test cannot pass while a thread failed."""
    start = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            start.wait()
            result = work(i)
            with lock:
                results.append(result)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results

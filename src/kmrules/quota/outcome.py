"""The one rule both ledgers apply: given the usage, what does a reservation answer?

Kept pure (no storage) so the database ledger and the in-memory ledger cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kmrules.quota.definitions import QuotaDefinition
from kmrules.quota.errors import HeldInOtherPeriodError
from kmrules.quota.models import Reservation, Usage
from kmrules.quota.periods import effective_limit

HeldPlace = tuple[str, int]
"""(period_key, place_no) of a case's active place in one quota."""


def reservation_outcome(
    defn: QuotaDefinition,
    key: str,
    case_id: str,
    used_by_period: Mapping[str, int],
    held: HeldPlace | None,
    next_place: Callable[[], int],
) -> Reservation:
    """Answer a reservation; `granted and not already_held` means the caller must take the place.

    `next_place` is only called when a new place is taken (the lowest free place number).
    """
    used = used_by_period.get(key, 0)
    limit = effective_limit(defn, key, used_by_period)
    if held is not None:
        held_key, held_no = held
        if held_key != key:
            raise HeldInOtherPeriodError(defn.id, case_id, held_key, key)
        return _answer(defn, key, case_id, held_no, True, True, used, limit)
    if defn.kind == "quota" and used >= limit:
        return _answer(defn, key, case_id, None, False, False, used, limit)
    return _answer(defn, key, case_id, next_place(), True, False, used + 1, limit)


def _answer(
    defn: QuotaDefinition,
    key: str,
    case_id: str,
    place_no: int | None,
    granted: bool,
    already_held: bool,
    used: int,
    limit: int,
) -> Reservation:
    return Reservation(
        quota_id=defn.id,
        kind=defn.kind,
        period_key=key,
        case_id=case_id,
        place_no=place_no,
        granted=granted,
        already_held=already_held,
        used=used,
        limit=limit,
        exceeded=used > limit,
    )


def usage_from(defn: QuotaDefinition, key: str, used: Mapping[str, int]) -> Usage:
    """Use of one period from the used counts of the periods that constrain it (both ledgers)."""
    limit = effective_limit(defn, key, used)
    n = used.get(key, 0)
    return Usage(quota_id=defn.id, period_key=key, used=n, limit=limit, kind=defn.kind, remaining=max(0, limit - n))

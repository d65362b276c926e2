"""Quota and target figures (seed §2.2, §2.6, §2.11) and the ledger that allocates places."""

from kmrules.quota.definitions import QuotaDefinition, period_key, period_limit
from kmrules.quota.models import AllocationReport, Released, Reservation, Usage

__all__ = [
    "AllocationReport",
    "QuotaDefinition",
    "Released",
    "Reservation",
    "Usage",
    "period_key",
    "period_limit",
]

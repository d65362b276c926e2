"""Typed quota errors, so a caller (API, CLI) can map each to a clear answer."""

from __future__ import annotations

from datetime import date

from kmrules.errors import KmrulesError


class QuotaError(KmrulesError):
    """Base of every quota and ledger error."""


class NotGovernedError(QuotaError):
    """The application date lies outside the validity window of the quota definition."""

    def __init__(self, quota_id: str, application_date: date) -> None:
        self.quota_id = quota_id
        self.application_date = application_date
        super().__init__(f"quota {quota_id!r} does not govern applications dated {application_date.isoformat()}")


class InvalidPeriodKeyError(QuotaError):
    """A period key does not fit the definition's period (e.g. "2024" for a quarterly quota)."""

    def __init__(self, quota_id: str, period_key: str, expected: str) -> None:
        self.quota_id = quota_id
        self.period_key = period_key
        super().__init__(f"period key {period_key!r} is not a valid {expected} key for quota {quota_id!r}")


class HeldInOtherPeriodError(QuotaError):
    """The case already holds a place of this quota in another period; release it first."""

    def __init__(self, quota_id: str, case_id: str, held_period: str, asked_period: str) -> None:
        self.quota_id = quota_id
        self.case_id = case_id
        self.held_period = held_period
        self.asked_period = asked_period
        super().__init__(
            f"case {case_id!r} holds a place of quota {quota_id!r} in period {held_period}, "
            f"not {asked_period}; release it before reserving in another period"
        )


class NothingHeldError(QuotaError):
    """A release found no active place for the case (never reserved, or already released)."""

    def __init__(self, case_id: str, quota_id: str | None) -> None:
        self.case_id = case_id
        self.quota_id = quota_id
        where = f" in quota {quota_id!r}" if quota_id is not None else ""
        super().__init__(f"case {case_id!r} holds no place{where}")


class DuplicateQuotaError(QuotaError):
    """One reservation named the same quota id twice (one case holds one place per quota)."""

    def __init__(self, quota_ids: list[str]) -> None:
        self.quota_ids = quota_ids
        super().__init__(f"quota id(s) given more than once: {', '.join(quota_ids)}")


class LedgerBusyError(QuotaError):
    """The database stayed locked or kept failing to serialise after the bounded retries."""

    def __init__(self, attempts: int, cause: BaseException) -> None:
        self.attempts = attempts
        super().__init__(f"ledger busy: gave up after {attempts} attempts ({cause})")


class LedgerInvariantError(QuotaError):
    """The ledger found its own counters inconsistent; the transaction was rolled back."""


class InvalidCaseIdError(QuotaError):
    """A case id must be 1 to 200 characters."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"invalid case id {case_id[:40]!r}: must be 1 to 200 characters")

"""Typed errors: every failure a caller can act on has its own class, never a bare Exception."""

from __future__ import annotations

from dataclasses import dataclass


class KmrulesError(Exception):
    """Base of every kmrules error."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and why it is wrong."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class RuleFileError(KmrulesError):
    """A rule, parameter or variant file is invalid; raised at load time, never at decision time."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid rules:\n" + "\n".join(f"  {p}" for p in problems))


class RequestError(KmrulesError):
    """A request is malformed: each problem names the field path and the reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid request:\n" + "\n".join(f"  {p}" for p in problems))


class UnknownSchemeError(KmrulesError):
    """The request names a scheme the rulebook does not have."""

    def __init__(self, scheme: str, known: list[str]) -> None:
        self.scheme = scheme
        self.known = known
        super().__init__(f"unknown scheme {scheme!r}; known schemes: {', '.join(known)}")


class UnknownVariantError(KmrulesError):
    """The request names a variant (or package) the rulebook does not have."""

    def __init__(self, variant: str, known: list[str]) -> None:
        self.variant = variant
        self.known = known
        super().__init__(f"unknown variant {variant!r}; known variants: {', '.join(known)}")


class VariantConflictError(KmrulesError):
    """Two variants of one package set the same parameter differently and no order was stated."""


class ParameterNotDefinedError(KmrulesError):
    """A parameter has no value on the requested date (outside the dated periods of the rules)."""

    def __init__(self, name: str, on: str, detail: str) -> None:
        self.name = name
        self.on = on
        super().__init__(f"parameter {name!r} has no value on {on}: {detail}")


class EngineError(KmrulesError):
    """The rule engine misbehaved (no or several results for a criterion, an action error).

    Never turned into an outcome: a decision that hit an EngineError is not a decision.
    """

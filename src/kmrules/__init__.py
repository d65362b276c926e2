"""kmrules: the Dutch knowledge-migrant scheme and the 2023 labour-migration package as rules-as-code."""

from __future__ import annotations

__version__ = "0.1.0"

from kmrules.catalogue import list_variants, measures
from kmrules.compare import Comparison, compare
from kmrules.decide import decide, get_rulebook
from kmrules.model import Decision

__all__ = [
    "Comparison",
    "Decision",
    "__version__",
    "compare",
    "decide",
    "get_rulebook",
    "list_variants",
    "measures",
]

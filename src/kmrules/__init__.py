"""kmrules: the Dutch knowledge-migrant scheme and the 2023 labour-migration package as rules-as-code."""

from __future__ import annotations

__version__ = "0.1.0"

from kmrules.decide import decide, get_rulebook
from kmrules.model import Decision

__all__ = ["Decision", "__version__", "decide", "get_rulebook"]

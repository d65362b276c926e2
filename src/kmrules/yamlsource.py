"""YAML reading that keeps line numbers and refuses duplicate keys.

PyYAML silently keeps the last of two equal keys; in a law file that hides a
mistake, so the loader here rejects it and remembers where every mapping starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kmrules.errors import Problem, RuleFileError


class LineDict(dict[str, Any]):
    """A mapping that remembers the line of each of its keys (1-based)."""

    line: int
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings are LineDicts and whose duplicate keys are errors."""

    source: str = "<string>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise RuleFileError([Problem(f"{loader.source}:{key_node.start_mark.line + 1}", "keys must be scalars")])
        skey = str(key) if not isinstance(key, str) else key
        if skey in result:
            raise RuleFileError(
                [
                    Problem(
                        f"{loader.source}:{key_node.start_mark.line + 1}",
                        f"duplicate key {skey!r} (first at line {result.key_lines[skey]})",
                    )
                ]
            )
        result[skey] = loader.construct_object(value_node, deep=True)
        result.key_lines[skey] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text; syntax errors become RuleFileError with file and line."""
    loader = _Loader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise RuleFileError([Problem(where, f"YAML syntax: {exc.problem}")]) from exc
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> Any:
    """Read and parse one YAML file."""
    return load_yaml_text(path.read_text(encoding="utf-8"), str(path))


def line_of(data: Any, loc: tuple[str | int, ...]) -> int | None:
    """The best line number for a location path inside parsed YAML (deepest mapping found)."""
    best: int | None = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            best = node.key_lines.get(part, best)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            best = getattr(node, "line", best)
        else:
            break
    return best

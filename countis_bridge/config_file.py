"""The daemon's YAML configuration file: read it safely, or refuse it in one line.

The file is screened on the parser's events before PyYAML builds anything: at most
``MAX_FILE_BYTES``, nesting at most ``MAX_DEPTH`` levels, integers of at most
``MAX_INT_DIGITS`` digits, at most ``MAX_NODES`` nodes with aliases expanded. Any problem
is a :class:`countis.errors.ConfigError` naming the file and, where YAML knows it, the place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from countis.errors import ConfigError

MAX_FILE_BYTES = 1 << 20  # a configuration file is a few KiB
MAX_DEPTH = 50  # the real layout is 4 levels deep
MAX_INT_DIGITS = 30  # no setting needs more; Python refuses int() of over 4,300 digits
MAX_NODES = 100_000  # with aliases expanded ("billion laughs")
_INT_TAG = "tag:yaml.org,2002:int"


def shorten(value: str, limit: int = 60) -> str:
    """``repr`` of a value for an error message, cut to about ``limit`` characters."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[: limit - 5]}...' ({len(value)} chars)"


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings document in the YAML file ``path`` (a ConfigError of one line if not)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read configuration file {path}: {reason}") from err
    try:
        _screen(text, path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from err
    except ConfigError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        # PyYAML's constructors: a date such as 2024-13-45, a value it cannot convert.
        raise ConfigError(f"{path}: a value YAML cannot convert ({shorten(str(err))})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"{path}: the top level must be a mapping of settings, not a {kind}")
    return data


def _screen(text: str, path: Path) -> None:
    """Refuse documents too deep, too large with aliases expanded, or with huge integers.

    Runs on the parser's events (an iterative state machine), before PyYAML's recursive
    composer or int() see the document: 500 nested levels would raise RecursionError
    there, a 5000-digit integer ValueError, and a few nested aliases expand to billions
    of nodes for the settings' validation.
    """
    resolver = yaml.resolver.Resolver()
    anchors: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # per open collection: its anchor, its node count
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        problem = None
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 0])
            if len(stack) - 1 > MAX_DEPTH:
                problem = f"nested deeper than {MAX_DEPTH} levels"
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = stack.pop()
            problem = _count(stack, anchors, anchor, count + 1)
        elif isinstance(event, yaml.ScalarEvent):
            problem = _check_scalar(resolver, event) or _count(stack, anchors, event.anchor, 1)
        elif isinstance(event, yaml.AliasEvent):
            problem = _count(stack, anchors, None, anchors.get(event.anchor or "", 1))
        if problem is not None:
            raise ConfigError(f"{path}: {problem}")


def _count(
    stack: list[list[Any]], anchors: dict[str, int], anchor: str | None, n: int
) -> str | None:
    """Add a node of ``n`` expanded nodes to its parent, remember its anchor; a problem."""
    if anchor is not None:
        anchors[anchor] = n
    stack[-1][1] += n
    return None if stack[-1][1] <= MAX_NODES else f"more than {MAX_NODES} values with aliases"


def _check_scalar(resolver: yaml.resolver.Resolver, event: yaml.ScalarEvent) -> str | None:
    """An integer of more than ``MAX_INT_DIGITS`` digits (plain, or tagged ``!!int``)."""
    value = event.value
    if sum(c.isdigit() for c in value) <= MAX_INT_DIGITS:
        return None
    tag = event.tag if event.tag not in (None, "!") else None
    if tag is None and event.implicit[0]:
        tag = resolver.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if tag == _INT_TAG:
        return f"an integer of more than {MAX_INT_DIGITS} digits ({shorten(value, 30)})"
    return None

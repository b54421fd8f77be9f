"""Reading a JSONL input file line by line, with line numbers and the malformed-row rule.

Rule (documented in ``docs/fidelity.md``): a line that is not a JSON object, or an object an env's
reader rejects, is recorded as a :class:`~resd_envs.fidelity.report.RowError` with its 1-based line
number and skipped; the run continues. After ``max_errors`` such lines the run stops reading (the file
is most likely in another format) and the report says so. Blank lines are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resd_envs.errors import ResdEnvError

#: Default number of malformed rows after which reading stops.
MAX_ERRORS = 20


class RowFormatError(ResdEnvError, ValueError):
    """A row that does not follow the env's reference format (message says what and how to fix)."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowFormatError]]:
    """Yield ``(line number, row)`` for every non-blank line, or ``(line, RowFormatError)`` for bad JSON.

    Raises:
        ResdEnvError: the file does not exist or is not UTF-8 text.
    """
    if not path.is_file():
        raise ResdEnvError(f"input file {path} does not exist (pass a JSONL file with --against)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ResdEnvError(f"{path} is not UTF-8 text ({exc}); fidelity inputs are JSONL files") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowFormatError(f"not valid JSON ({exc.msg} at column {exc.colno}); each line must be "
                                         "one JSON object")
            continue
        if not isinstance(row, dict):
            yield number, RowFormatError(f"a JSON {type(row).__name__}, not an object; each line must be one "
                                         "JSON object")
            continue
        yield number, row


def need(row: dict[str, Any], key: str, kind: type | tuple[type, ...], hint: str) -> Any:
    """``row[key]`` checked to be of ``kind``.

    Raises:
        RowFormatError: the key is missing or has the wrong type; ``hint`` says what it should hold.
    """
    if key not in row:
        raise RowFormatError(f'missing field "{key}" ({hint})')
    value = row[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise RowFormatError(f'field "{key}" is a boolean; it should be {hint}')
    if not isinstance(value, kind):
        raise RowFormatError(f'field "{key}" is {type(value).__name__} {short(value)}; it should be {hint}')
    return value


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

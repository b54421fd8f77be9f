"""Pulling the program out of a model response.

Rule: the last fenced code block whose info string is ``python``, ``py``, ``python3`` or empty.
No closed fence → no program (the caller reports ``error_type="no_code"``; nothing is run).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(python3?|py)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_program(response: str) -> str | None:
    """The code of the last python (or unlabelled) fenced block of ``response``, or None."""
    if not isinstance(response, str):
        return None
    blocks = [m.group(2) for m in _FENCE.finditer(response)]
    if not blocks:
        return None
    code = blocks[-1].strip("\n")
    return code if code.strip() else None

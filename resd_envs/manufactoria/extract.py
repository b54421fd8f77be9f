"""Model response -> program text, as DELTA's open-instruct ``ManufactoriaVerifier`` extracts it.

All non-overlapping matches of: three backticks, an optional literal ``manufactoria`` tag, then the
shortest run of any characters (newlines included) up to the next three backticks. The last match,
stripped, is the program; with no match the whole response is used unchanged. Consequences kept on
purpose (the reward must equal the reference's): a draft inside ``<think>`` is ignored when a final
block follows; ```` ```python ```` or ```` ```Manufactoria ```` keeps the tag as the first program line
(a parse error); an unclosed fence means the whole response is parsed.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:manufactoria)?(.*?)```", re.DOTALL)


def extract_program(response: str) -> str:
    """The program text the reward is computed on (see the module docstring)."""
    if not isinstance(response, str):
        raise TypeError(f"a model response must be a str, got {type(response).__name__}")
    matches = _FENCE.findall(response)
    if not matches:
        return response
    return matches[-1].strip()


def fence_count(response: str) -> int:
    """How many complete fenced blocks the extractor sees (used by feedback)."""
    return len(_FENCE.findall(response))

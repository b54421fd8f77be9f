"""A ``gymnasium.spaces.Text`` that admits any prompt and any model output.

Gymnasium's ``Text.contains`` rejects characters outside its charset, but prompts and LLM outputs can
hold any Unicode. :class:`AnyText` keeps ``Text``'s type, length bounds and sampling (from printable
ASCII) and accepts every ``str`` within the length bounds.
"""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

#: Characters used when sampling (check_env steps with a sampled action).
SAMPLE_CHARSET = string.printable

#: Generous default bound: long reasoning responses and full feedback fit.
MAX_TEXT_LENGTH = 1_000_000


class AnyText(spaces.Text):
    """Text space whose ``contains`` accepts any string of length in [min_length, max_length]."""

    def __init__(self, max_length: int = MAX_TEXT_LENGTH, *, min_length: int = 0, seed: Any = None) -> None:
        super().__init__(max_length=max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, AnyText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    __hash__ = spaces.Text.__hash__

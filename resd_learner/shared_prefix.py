"""Shared-prefix teacher forward: the token prefix that every teacher sequence of a step starts with.

The teacher sequences of one optimizer step begin with the same tokens: the chat system turn, the
teacher's instructions (RESD) and, for tasks whose prompts open with a fixed block, that block too
(full Finer's prompt opens with the 139-tag list, ~1,700 tokens). Their keys and values are the same
for every sequence, so :class:`resd_learner.teacher.EmaTeacher` computes them once per teacher
version and runs only the rest of each sequence (``teacher.share_prefix``).

Pure helpers, no model state:

- :func:`shared_prefix_length`: how many leading tokens a set of sequences share, capped so that no
  position whose hidden state is needed falls inside the prefix;
- :func:`supports_shared_prefix`: whether a model's attention allows reusing a prefix's keys/values
  (full attention in every layer; sliding windows are left to the plain forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MIN_SHARED_PREFIX = 8
"""Shorter common prefixes are not worth a separate forward; :func:`shared_prefix_length` returns 0."""


def shared_prefix_length(sequences: Sequence[Sequence[int]], first_needed: Sequence[int]) -> int:
    """Number of leading tokens shared by every sequence, at most ``min(first_needed)``.

    Args:
        sequences: token ids of each sequence (at least two for a prefix to be worth sharing).
        first_needed: for each sequence, the first position whose hidden state the caller gathers
            (for a teacher sequence: ``response_start - 1``); the prefix never covers it.

    Returns:
        The prefix length P (every sequence's first P tokens are equal and P <= every
        ``first_needed``), or 0 when there are fewer than two sequences or P < :data:`MIN_SHARED_PREFIX`.
    """
    if len(sequences) != len(first_needed):
        raise ValueError(f"one first-needed position per sequence: got {len(sequences)} sequences and "
                         f"{len(first_needed)} positions")
    if len(sequences) < 2:
        return 0
    limit = min(min(len(s) for s in sequences), min(first_needed))
    first = sequences[0]
    length = 0
    while length < limit and all(seq[length] == first[length] for seq in sequences[1:]):
        length += 1
    return length if length >= MIN_SHARED_PREFIX else 0


def supports_shared_prefix(config: Any) -> bool:
    """Whether the model (its Hugging Face ``config``) attends with full attention in every layer.

    Sliding-window layers keep only the last window of a cache, and models that mix attention types
    build their masks per layer type; neither is worth the risk for a speed-up, so they are refused.
    """
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    layer_types = getattr(text, "layer_types", None)
    if layer_types is not None and any(kind != "full_attention" for kind in layer_types):
        return False
    window = getattr(text, "sliding_window", None)
    return window is None or not getattr(text, "use_sliding_window", True)

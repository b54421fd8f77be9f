"""The solution buffer and the choice of a demonstration for the teacher prompt.

Owns :class:`SolutionBuffer` (example id → one raw successful response) and
:func:`choose_demonstration`. Behaviour follows the official code (docs/official-defaults.md §5): for every
example with a success in the current step, the *first* successful response of that step is stored,
replacing any earlier one; nothing is evicted. Responses are stored raw (thinking included) and
thinking is stripped only when a demonstration is handed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .parsing import strip_thinking
from .types import SampleView


class SolutionBuffer:
    """Map from example id to the first successful response of the latest step that had one."""

    def __init__(self) -> None:
        self._solutions: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._solutions)

    def __contains__(self, example_id: object) -> bool:
        return example_id in self._solutions

    def store_step(self, samples: Sequence[SampleView]) -> list[str]:
        """Store this step's successes; returns the example ids that were (re)written, in order.

        For each example id, only the first successful sample (in the given order) is stored.
        """
        written: list[str] = []
        for sample in samples:
            if sample.success and sample.example_id not in written:
                self._solutions[sample.example_id] = sample.response
                written.append(sample.example_id)
        return written

    def get(self, example_id: str, *, strip: bool = True) -> str:
        """The stored response for ``example_id`` ("" if none); thinking stripped unless ``strip=False``."""
        text = self._solutions.get(example_id, "")
        return strip_thinking(text) if strip and text else text

    def state_dict(self) -> dict[str, Any]:
        return {"solutions": dict(self._solutions)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        solutions = state.get("solutions") if isinstance(state, dict) else None
        if not isinstance(solutions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in solutions.items()
        ):
            raise ValueError("solution buffer state must be {'solutions': {example_id: response_text}}")
        self._solutions = dict(solutions)


def choose_demonstration(
    sample: SampleView,
    group: Sequence[SampleView],
    buffer: SolutionBuffer | None,
    *,
    self_success: bool,
    strip: bool = True,
) -> str:
    """Demonstration text for ``sample`` ("" if none), in the official order.

    1. the sample's own response, if it succeeded and ``self_success`` is True (RESD and SDPO+ss;
       plain SDPO passes False);
    2. else the first successful peer in ``group`` (same example id, other ``group_index``);
    3. else the buffered solution for the sample's example id (``buffer`` may be None);
    4. else "".

    Thinking is stripped from the chosen text unless ``strip=False``. Call it after the updater has
    stored this step's successes, as the official trainer does.
    """

    def finish(text: str) -> str:
        return strip_thinking(text) if strip else text

    if sample.success and self_success:
        return finish(sample.response)
    for peer in group:
        if peer.example_id == sample.example_id and peer.group_index != sample.group_index and peer.success:
            return finish(peer.response)
    if buffer is not None:
        return buffer.get(sample.example_id, strip=strip)
    return ""

"""Plain containers handed between the trainer's stages (no torch here).

- :class:`Task`: one prompt of the stream (id, chat messages, user-visible text).
- :class:`Score`: what the environment said about one response (reward, per-test-case score, feedback).
- :class:`Sample`: one rollout: the task, the exact prompt/response token ids, the score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Task:
    """One prompt of the train or validation stream.

    Attributes:
        example_id: stable id (the env's task id for resd ids, ``seed-<n>`` for other gymnasium ids).
        messages: the chat messages given to the student (the student prompt never changes).
        prompt: the user-visible prompt text (last user message), used by the context updater.
        index: position in the stream (0-based).
        env_state: extra data the env side needs to score (e.g. the reset seed); opaque to the trainer.
    """

    example_id: str
    messages: tuple[dict[str, str], ...]
    prompt: str
    index: int = 0
    env_state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """The environment's verdict on one response.

    ``reward`` is the training reward (binary or dense); ``score`` the fraction of test cases passed
    (per-test-case accuracy); ``passed`` whether every test passed (per-task accuracy).
    ``privileged_feedback`` is feedback meant only for the teacher context (e.g. the expected answer),
    "" when the env offers none; :attr:`context_feedback` picks it over ``feedback``.
    """

    reward: float
    score: float
    passed: bool
    feedback: str
    error_type: str | None = None
    num_tests: int = 0
    privileged_feedback: str = ""

    @property
    def context_feedback(self) -> str:
        """What the context (reflector, teacher prompt) sees: the privileged feedback when offered."""
        return self.privileged_feedback or self.feedback


@dataclass
class Sample:
    """One rollout with everything the later stages need.

    ``response_ids`` are the generated token ids exactly as sampled (never re-tokenised); the
    reasoning of thinking models stays inside them. ``group_index`` numbers the n responses of a prompt.
    """

    task: Task
    group_index: int
    prompt_ids: list[int]
    response_ids: list[int]
    response_text: str
    finish_reason: str
    logprobs: list[float] | None = None
    score: Score | None = None

    @property
    def reward(self) -> float:
        return self.score.reward if self.score is not None else 0.0

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

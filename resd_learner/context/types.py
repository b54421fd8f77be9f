"""Containers handed between the trainer and the context updater (pure data, no behaviour).

``SampleView`` is what the updater sees of one rollout; ``Generate`` is the narrow generation
callable it uses to run the student in diagnostic mode; ``ContextUpdate`` is what one update returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Generate = Callable[..., list[str]]
"""``generate(batch)`` or ``generate(batch, schema=...)``: a batch of chat-message lists → exactly one
completion text per list (same order). The ``schema`` keyword (a :data:`SchemaArg`) is passed only when
the updater runs with structured output, and then every completion must be JSON valid under its schema."""
SchemaArg = dict[str, Any] | Sequence[dict[str, Any] | None] | None
"""One JSON schema for every chat of a call, a list with one per chat (``context.extractive_lessons``:
each failure's own lesson clauses), or None (free-form)."""


@dataclass
class SampleView:
    """One scored rollout as seen by the context updater.

    ``example_id`` identifies the task (solution-buffer key); ``group_index`` is the rollout's index
    among the rollouts of that example in this step; ``prompt`` is the user-visible prompt text;
    ``response`` the raw decoded response (thinking included); ``success`` whether it counts as solved
    (reward >= the success threshold); ``feedback`` the environment feedback text ("" if none; the
    env's privileged feedback when it offers one, which may reveal the expected output);
    ``policy_feedback`` the env's policy-safe feedback, which never reveals it ("" = not given, then
    ``feedback`` is taken to be policy-safe). Extractive lessons are cut from :attr:`lesson_source`.
    """

    example_id: str
    group_index: int
    prompt: str
    response: str
    reward: float
    success: bool
    feedback: str = ""
    policy_feedback: str = ""

    @property
    def lesson_source(self) -> str:
        """The feedback a playbook lesson may quote: the policy-safe text (the playbook is shared by every
        task, so one task's expected output must not enter it), else ``feedback``."""
        return self.policy_feedback or self.feedback


@dataclass
class ContextUpdate:
    """Result of :meth:`ContextUpdater.update`.

    ``reflections[i]`` is the reflection for ``samples[i]`` (thinking stripped; "" for successes and
    for failures whose reflection was empty or unusable). ``stats`` holds this update's counters
    (see ``ContextUpdater.update``); ``events`` the playbook history events, in the order they
    happened; ``playbook`` the rendered playbook after the update ("" when it has no entries);
    ``outputs`` one dict per model output of this update, for the run records: ``kind``
    ("reflection", "success_tag" or "curation"), ``example_id``, ``group_index``, ``text`` (thinking
    stripped), ``error`` ("" when it parsed) and, for curations, ``operations`` (the proposed ADDs as
    ``{"section", "content"}``) and ``added`` (the ids of the entries they produced).
    """

    reflections: list[str]
    stats: dict[str, float]
    events: list[dict[str, Any]] = field(default_factory=list)
    playbook: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)

"""The single gymnasium env class shared by every resd benchmark.

Episode: ``reset`` picks a task and returns its prompt; ``step(response)`` scores the response with
the family's scorer and returns the feedback text as the next observation. With ``max_attempts=1``
(default) the episode ends after one step; with more, the same task is kept and the model may retry
after reading the feedback, until it passes or the attempts are used up.

What the policy may see and what it may not: the observation (= ``info["feedback"]``) is written at a
policy-safe level by default (``full``/``summary``/``minimal``: what failed and why, never a hidden
expected output). ``info["privileged_feedback"]`` always holds the revealing text (expected positions,
expected verdicts, gold tags) for a teacher context or a human; ``info["test_results"]`` and
``info["extra"]`` are for the trainer too. ``feedback="privileged"`` makes the observation itself the
revealing text and is refused when ``max_attempts > 1`` (the next attempt could copy the answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium
from gymnasium.error import ResetNeeded

from resd_envs.core.family import Task, TaskFamily, check_keywords
from resd_envs.core.results import Evaluation, scoring_option_problems
from resd_envs.core.spaces import AnyText
from resd_envs.errors import ConfigError, UnknownTaskError

#: Keys present in every ``step`` info dict, in this order.
STEP_INFO_KEYS: tuple[str, ...] = (
    "passed",
    "score",
    "num_tests",
    "num_passed",
    "test_results",
    "feedback",
    "privileged_feedback",
    "error_type",
    "task_id",
    "attempt",
    "extra",
)

#: Keyword arguments every resd env takes besides its family's.
ENV_KEYWORDS: tuple[str, ...] = (
    "split",
    "reward_mode",
    "max_attempts",
    "feedback",
    "max_feedback_chars",
    "render_mode",
)


class TextEnv(gymnasium.Env[str, str]):
    """Episode plumbing shared by resd's text envs (:class:`TaskEnv`, the reasoning-gym bridge).

    A subclass calls :meth:`_configure` from ``__init__``, :meth:`_begin_episode` from ``reset``, and
    from ``step`` :meth:`_begin_attempt` (the checked response) then :meth:`_end_attempt` with the
    attempt's :class:`Evaluation`, which returns the ``step`` tuple. The attempt counter, the end of the
    episode, the reward, the ``ansi`` rendering and the step info keys (:data:`STEP_INFO_KEYS`) are
    therefore the same in every resd env.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def _configure(
        self,
        env_id: str,
        *,
        reward_mode: str,
        max_attempts: int,
        feedback: str,
        max_feedback_chars: int,
        render_mode: str | None,
        problems: Sequence[str] = (),
    ) -> None:
        """Check the env arguments and set the episode state.

        Raises:
            ConfigError: listing every invalid argument, after ``problems`` (the subclass's own).
        """
        problems = [*problems]
        problems += scoring_option_problems(reward_mode, feedback, max_feedback_chars, max_attempts)
        modes = self.metadata["render_modes"]
        if render_mode is not None and render_mode not in modes:
            problems.append(f"render_mode={render_mode!r}: use one of {', '.join(map(repr, modes))} or None")
        if problems:
            raise ConfigError(f"invalid arguments for {env_id}:\n  - " + "\n  - ".join(problems))
        self.reward_mode = reward_mode
        self.max_attempts = max_attempts
        self.feedback_detail = feedback
        self.max_feedback_chars = max_feedback_chars
        self.render_mode = render_mode
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self._attempt = 0
        self._done = True
        self._last_text = ""

    def _begin_episode(self, prompt: str) -> None:
        """Start an episode whose first observation is ``prompt``."""
        self._attempt = 0
        self._done = False
        self._last_text = prompt

    def _begin_attempt(self, action: Any) -> str:
        """Count an attempt and return the response as text.

        Raises:
            ResetNeeded: no episode is running (``reset`` was not called, or the episode has ended).
        """
        if self._done:
            raise ResetNeeded("call reset() before step(); the previous episode has ended")
        self._attempt += 1
        return action if isinstance(action, str) else str(action)

    def _end_attempt(
        self, evaluation: Evaluation, task_id: str
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """The ``step`` result of the current attempt; the episode ends on a pass or the last attempt."""
        terminated = evaluation.passed or self._attempt >= self.max_attempts
        self._done = terminated
        self._last_text = evaluation.feedback
        info = {
            "passed": evaluation.passed,
            "score": float(evaluation.score),
            "num_tests": evaluation.num_tests,
            "num_passed": evaluation.num_passed,
            "test_results": [t.as_dict() for t in evaluation.test_results],
            "feedback": evaluation.feedback,
            "privileged_feedback": evaluation.privileged_feedback,
            "error_type": evaluation.error_type,
            "task_id": task_id,
            "attempt": self._attempt,
            "extra": dict(evaluation.extra),
        }
        return evaluation.feedback, evaluation.reward(self.reward_mode), terminated, False, info

    def render(self) -> Any:
        return self._last_text if self.render_mode == "ansi" else None


class TaskEnv(TextEnv):
    """Single-task text environment around a :class:`TaskFamily`.

    ## Action space
    ``AnyText``: the model's full response (any string; code is extracted by the family).

    ## Observation space
    ``AnyText``: the task prompt after ``reset``; the feedback text after ``step``.

    ## Rewards
    ``reward_mode="binary"``: 1.0 when every test case passes, else 0.0. ``"pass_rate"``: the fraction
    of test cases passed. The per-test outcomes are in ``info["test_results"]``.

    ## Episode end
    ``terminated=True`` when the attempt passes or ``max_attempts`` attempts are used. ``truncated``
    is always False (reserved for an outer TimeLimit).

    ## Arguments
    split: ``"train"`` or ``"test"`` (families may offer more).
    reward_mode: ``"binary"`` or ``"pass_rate"``.
    max_attempts: attempts per episode (>= 1); later attempts see the previous feedback.
    feedback: ``"full"``, ``"summary"`` or ``"minimal"`` (policy-safe) detail of the observation, or
        ``"privileged"`` (reveals expected outputs; only with ``max_attempts=1``).
    max_feedback_chars: cap on the feedback length (0 = no cap).
    render_mode: ``None``, ``"ansi"`` or a family-specific mode such as ``"rgb_array"``.
    **family_kwargs: passed to the family constructor (data paths, sandbox limits, ...).
    """

    family_class: ClassVar[type[TaskFamily]]

    def __init__(
        self,
        split: str = "train",
        reward_mode: str = "binary",
        max_attempts: int = 1,
        feedback: str = "full",
        max_feedback_chars: int = 4000,
        render_mode: str | None = None,
        **family_kwargs: Any,
    ) -> None:
        self._configure(
            self.family_class.env_id,
            reward_mode=reward_mode,
            max_attempts=max_attempts,
            feedback=feedback,
            max_feedback_chars=max_feedback_chars,
            render_mode=render_mode,
        )
        check_keywords(family_kwargs, self.family_class, where="make()", also=ENV_KEYWORDS)
        self.family = self.family_class(**family_kwargs)
        self.split = self.family.check_split(split)
        self._task: Task | None = None
        self._last_response: str | None = None

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        tasks = self.family.tasks(self.split)
        self._task = self._choose_task(tasks, options or {})
        self._begin_episode(str(self._task["prompt"]))
        self._last_response = None
        info = {
            "task_id": str(self._task["task_id"]),
            "env_id": self.family.env_id,
            "env_version": self.family.version,
            "task_set_sha256": self.family.task_set_sha256(self.split),
            "split": self.split,
            "messages": [{"role": "user", "content": self._last_text}],
        }
        return self._last_text, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        response = self._begin_attempt(action)
        assert self._task is not None
        evaluation = self.family.evaluate(
            self._task, response, detail=self.feedback_detail, max_chars=self.max_feedback_chars
        )
        self._last_response = response
        return self._end_attempt(evaluation, str(self._task["task_id"]))

    def render(self) -> Any:
        if self.render_mode == "rgb_array":
            if self._task is None:
                raise ResetNeeded("call reset() before render()")
            return self.family.render_rgb(self._task, self._last_response)
        return super().render()

    def close(self) -> None:
        close = getattr(self.family, "close", None)
        if callable(close):
            close()

    # -- helpers ------------------------------------------------------------------------------
    @property
    def task(self) -> Task | None:
        """The current task row (None before the first reset)."""
        return self._task

    def _choose_task(self, tasks: tuple[Task, ...], options: dict[str, Any]) -> Task:
        unknown = set(options) - {"task_id", "task_index"}
        if unknown:
            raise ConfigError(f"unknown reset option(s) {sorted(unknown)}; supported: 'task_id', 'task_index'")
        if "task_id" in options:
            return self.family.task_by_id(str(options["task_id"]), self.split)
        if "task_index" in options:
            index = options["task_index"]
            if not isinstance(index, int) or not -len(tasks) <= index < len(tasks):
                raise UnknownTaskError(
                    f"task_index {index!r} is out of range for split {self.split!r} with {len(tasks)} tasks"
                )
            return tasks[index]
        return tasks[int(self.np_random.integers(len(tasks)))]

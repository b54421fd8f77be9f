"""The environment side of the learner: prompts in, rewards and feedback out.

Episodes are single-step: ``reset`` gives the prompt, ``step(response)`` gives the reward, the
feedback text and (in ``info["score"]``) the fraction of test cases passed.

Two implementations of one small interface (:class:`TaskSource`):

- :class:`ResdTaskSource` for ``resd/...`` ids: task rows from :func:`resd_envs.load_tasks` (the
  stream, in file order) and batched, parallel scoring through :func:`resd_envs.verify`.
- :class:`GymTaskSource` for any other gymnasium id (``module:ns/Name-vN`` works too): prompt i of a
  stream comes from a fresh env's ``reset(seed=base + i, options=...)``; each response is scored by a
  fresh env reset with the same seed, then ``step(response)``.

Use :func:`make_task_source` to pick one from an :class:`~resd_learner.config.EnvConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from resd_learner.types import Score, Task


class TaskSource(Protocol):
    """Prompts of a split and scoring of responses."""

    env_id: str

    def tasks(self, split: str, limit: int | None = None) -> list[Task]:
        """The ordered prompts of ``split`` (the first ``limit`` when given)."""

    def score(self, tasks: Sequence[Task], responses: Sequence[str]) -> list[Score]:
        """Score ``responses[i]`` on ``tasks[i]``; bad model output never raises."""


def is_resd_id(env_id: str) -> bool:
    """True for ids served by resd_envs (with or without the ``resd_envs:`` prefix)."""
    bare = env_id.split(":", 1)[1] if env_id.startswith("resd_envs:") else env_id
    try:
        import resd_envs
    except ImportError:
        return False
    return bare in resd_envs.list_envs()


def make_task_source(config: Any) -> TaskSource:
    """The task source for ``config`` (an :class:`~resd_learner.config.EnvConfig`)."""
    if is_resd_id(config.id):
        return ResdTaskSource(
            config.id,
            reward_mode=config.reward_mode,
            feedback_detail=config.feedback_detail,
            max_feedback_chars=config.max_feedback_chars,
            max_workers=config.verify_workers,
            family_kwargs=dict(config.kwargs),
        )
    return GymTaskSource(
        config.id,
        make_kwargs=dict(config.kwargs),
        reset_options=dict(config.reset_options),
        seeds={config.train_split: config.train_seed, config.val_split: config.val_seed},
    )


def _user_prompt(messages: Sequence[dict[str, str]]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


class ResdTaskSource:
    """resd_envs ids: rows from ``load_tasks``, scoring by ``verify`` (parallel, order kept)."""

    def __init__(
        self,
        env_id: str,
        *,
        reward_mode: str = "binary",
        feedback_detail: str = "full",
        max_feedback_chars: int = 2000,
        max_workers: int | None = None,
        family_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import resd_envs

        self._api = resd_envs
        self.env_id = env_id
        self.reward_mode = reward_mode
        self.feedback_detail = feedback_detail
        self.max_feedback_chars = max_feedback_chars
        self.max_workers = max_workers
        self.family_kwargs = family_kwargs or {}

    def tasks(self, split: str, limit: int | None = None) -> list[Task]:
        rows = self._api.load_tasks(self.env_id, split, **self.family_kwargs)
        if limit is not None:
            rows = rows[:limit]
        out = []
        for index, row in enumerate(rows):
            messages = tuple({"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"])
            out.append(Task(example_id=str(row["task_id"]), messages=messages, prompt=_user_prompt(messages),
                            index=index))
        return out

    def score(self, tasks: Sequence[Task], responses: Sequence[str]) -> list[Score]:
        if len(tasks) != len(responses):
            raise ValueError(f"score got {len(tasks)} tasks but {len(responses)} responses; pass one of each")
        if not tasks:
            return []
        results = self._api.verify(
            self.env_id,
            [t.example_id for t in tasks],
            list(responses),
            reward_mode=self.reward_mode,
            feedback=self.feedback_detail,
            max_feedback_chars=self.max_feedback_chars,
            max_workers=self.max_workers,
            **self.family_kwargs,
        )
        return [
            Score(reward=float(r.reward), score=float(r.score), passed=bool(r.passed), feedback=r.feedback or "",
                  error_type=r.error_type, num_tests=int(r.num_tests))
            for r in results
        ]


class GymTaskSource:
    """Any gymnasium id: one env per prompt, ``reset(seed=, options=)`` for prompts, ``step`` to score.

    Observations must be text (the prompt); ``info["messages"]`` is used as the chat when present.
    The per-test-case score is ``info["score"]`` when the env reports it, else the reward.
    """

    def __init__(
        self,
        env_id: str,
        *,
        make_kwargs: dict[str, Any] | None = None,
        reset_options: dict[str, Any] | None = None,
        seeds: dict[str, int] | None = None,
    ) -> None:
        import gymnasium

        self._gym = gymnasium
        self.env_id = env_id
        self.make_kwargs = make_kwargs or {}
        self.reset_options = reset_options or {}
        self.seeds = seeds or {}
        try:
            if ":" not in env_id:  # 'module:ns/Name-vN' is resolved by gymnasium.make (it imports the module)
                self._gym.spec(env_id)
        except self._gym.error.Error as exc:
            raise ValueError(f"env.id={env_id!r} is not a registered gymnasium id ({exc}); "
                             "use 'module:ns/Name-vN' to import the module that registers it") from exc

    def _reset(self, seed: int) -> tuple[Any, str, dict[str, Any]]:
        env = self._gym.make(self.env_id, **self.make_kwargs)
        observation, info = env.reset(seed=seed, options=dict(self.reset_options) or None)
        return env, observation, info

    def tasks(self, split: str, limit: int | None = None) -> list[Task]:
        if limit is None:
            raise ValueError(
                f"{self.env_id} is not a resd_envs id, so its prompts come from reset(seed=...): "
                "set env.num_train and env.num_val to the number of prompts to draw"
            )
        base = self.seeds.get(split, 0)
        out = []
        for index in range(limit):
            env, observation, info = self._reset(base + index)
            env.close()
            if not isinstance(observation, str):
                raise TypeError(
                    f"{self.env_id}: reset returned a {type(observation).__name__} observation; the learner "
                    "needs text prompts (a gymnasium Text observation space)"
                )
            raw = info.get("messages") or [{"role": "user", "content": observation}]
            messages = tuple({"role": str(m["role"]), "content": str(m["content"])} for m in raw)
            example_id = str(info.get("task_id", f"{split}-seed-{base + index}"))
            out.append(Task(example_id=example_id, messages=messages, prompt=_user_prompt(messages), index=index,
                            env_state={"seed": base + index}))
        return out

    def score(self, tasks: Sequence[Task], responses: Sequence[str]) -> list[Score]:
        if len(tasks) != len(responses):
            raise ValueError(f"score got {len(tasks)} tasks but {len(responses)} responses; pass one of each")
        out = []
        for task, response in zip(tasks, responses):
            env, _, _ = self._reset(int(task.env_state["seed"]))
            try:
                observation, reward, _, _, info = env.step(response)
            finally:
                env.close()
            feedback = info.get("feedback", observation if isinstance(observation, str) else "")
            passed = bool(info.get("passed", float(reward) >= 1.0))
            score = float(info.get("score", reward))
            out.append(Score(reward=float(reward), score=score, passed=passed, feedback=str(feedback or ""),
                             error_type=info.get("error_type"), num_tests=int(info.get("num_tests", 1) or 1)))
        return out

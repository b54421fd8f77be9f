"""The environment side of the learner: prompts in, rewards and feedback out.

Episodes are single-step: ``reset`` gives the prompt, ``step(response)`` gives the reward, the
feedback text and (in ``info["score"]``) the fraction of test cases passed.

Two implementations of one small interface (:class:`TaskSource`):

- :class:`ResdTaskSource` for ``resd/...`` ids: task rows from :func:`resd_envs.load_tasks` (the
  stream, in file order) and batched, parallel scoring through :func:`resd_envs.verify`.
- :class:`GymTaskSource` for any other gymnasium id (``module:ns/Name-vN`` works too): prompt i of a
  split comes from a fresh env's ``reset(seed=base + i, options=...)``; each response is scored by a
  fresh env reset with the same seed, then ``step(response)``. The split selects the seed base
  (``env.train_seed`` / ``env.val_seed``), the make kwargs (``env.kwargs`` updated by
  ``env.train_kwargs`` / ``env.val_kwargs``) and, with ``env.split_option`` set, a reset option that
  carries the split name — so an env with its own train/test data can serve it.

The contract a gymnasium env must meet (documented in docs/learner.md, checked by
:func:`env_problems` before any model loads):

- text spaces: ``reset`` returns the prompt string; ``step`` takes the response string;
- ``reset(seed=s)`` is deterministic: the same seed gives the same task (scoring re-creates it);
- ``info`` keys read, all optional: from ``reset``: ``task_id``, ``messages`` (the chat to send
  instead of one user message); from ``step``: ``passed`` (default ``reward >= 1``), ``score``
  (fraction of tests passed, default the reward), ``num_tests`` (default 1), ``error_type``,
  ``feedback`` (default the observation text), ``privileged_feedback`` (shown to the teacher context
  instead of ``feedback`` when present).

Both sources honour ``env.reward_mode`` (binary: 1.0 when every test passed, else 0.0; pass_rate: the
fraction of tests passed) and ``env.max_feedback_chars``.

Use :func:`make_task_source` to pick one from an :class:`~resd_learner.config.EnvConfig`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium

import resd_envs
from resd_envs.core.results import cap_text
from resd_learner.types import Score, Task

if TYPE_CHECKING:
    from resd_learner.config import EnvConfig

REWARD_MODES: tuple[str, ...] = ("binary", "pass_rate")


class TaskSource(Protocol):
    """Prompts of a split and scoring of responses."""

    env_id: str

    def tasks(self, split: str, limit: int | None = None) -> list[Task]:
        """The ordered prompts of ``split`` (the first ``limit`` when given)."""

    def score(self, tasks: Sequence[Task], responses: Sequence[str]) -> list[Score]:
        """Score ``responses[i]`` on ``tasks[i]``; bad model output never raises."""


def _without_module_prefix(env_id: str) -> str:
    """``env_id`` without a leading ``resd_envs:`` (gymnasium's 'module:id' form)."""
    return env_id.split(":", 1)[1] if env_id.startswith("resd_envs:") else env_id


def is_resd_id(env_id: str) -> bool:
    """True for ids served by resd_envs (with or without the ``resd_envs:`` prefix)."""
    return _without_module_prefix(env_id) in resd_envs.list_envs()


def env_problems(config: EnvConfig) -> list[str]:
    """One-line problems with ``config``'s env that would otherwise surface after the models load.

    Checks that the id exists (with a did-you-mean), that a gymnasium env has text observation and
    action spaces, and that ``env.num_train`` / ``env.num_val`` are given for a non-resd id (its prompts
    are drawn by seed, so the count is not known). Creates the env once (no reset) for the space check.
    """
    if not config.id:
        return []
    if is_resd_id(config.id):
        return _resd_kwargs_problems(config)
    out = []
    if ":" not in config.id:  # 'module:ns/Name-vN' is resolved (the module imported) by gymnasium.make
        known = list(gymnasium.envs.registry)
        if config.id not in known:
            close = difflib.get_close_matches(config.id, known + list(resd_envs.list_envs()), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return [f"env.id={config.id!r} is not a registered gymnasium id{hint} (use 'module:ns/Name-vN' to import "
                    "the module that registers it)"]
    for name in ("num_train", "num_val"):
        if getattr(config, name) is None:
            out.append(f"env.{name} is required for env.id={config.id!r}: its prompts come from reset(seed=...), "
                       "so give the number of prompts to draw")
    try:
        env = gymnasium.make(config.id, **dict(config.kwargs))
    except Exception as exc:  # any failure of a third-party constructor becomes one line
        return out + [f"env.id={config.id!r} cannot be created with env.kwargs={dict(config.kwargs)}: "
                      f"{type(exc).__name__}: {exc}"]
    try:
        for role, space in (("observation", env.observation_space), ("action", env.action_space)):
            if not isinstance(space, gymnasium.spaces.Text):
                out.append(f"env.id={config.id!r} has a {type(space).__name__} {role} space; the learner needs "
                           "text environments (gymnasium.spaces.Text observation and action spaces)")
    finally:
        env.close()
    return out


def _resd_kwargs_problems(config: EnvConfig) -> list[str]:
    """``env.kwargs`` checked against the resd family's constructor (unknown keywords, bad values).

    Constructing a family reads no task file, so this is cheap; a family that cannot be built here
    would fail the same way after the models load.
    """
    from resd_envs.core.family import check_keywords
    from resd_envs.registration import env_entry, load_object

    family_class = load_object(env_entry(_without_module_prefix(config.id)).family_entry_point)
    kwargs = dict(config.kwargs)
    try:
        check_keywords(kwargs, family_class, where="env.kwargs")
        family_class(**kwargs)
    except Exception as exc:  # ConfigError / TypeError from bad values, or any constructor failure: one line
        return [f"env.kwargs={kwargs} for env.id={config.id!r}: {' '.join(str(exc).split())}"]
    return []


def make_task_source(config: EnvConfig) -> TaskSource:
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
        split_kwargs={config.train_split: dict(config.train_kwargs), config.val_split: dict(config.val_kwargs)},
        split_option=config.split_option,
        reward_mode=config.reward_mode,
        max_feedback_chars=config.max_feedback_chars,
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
                            index=index, env_state={"split": split}))
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
                  error_type=r.error_type, num_tests=int(r.num_tests),
                  privileged_feedback=_privileged(r, self.max_feedback_chars))
            for r in results
        ]

    def reference_replies(self, tasks: Sequence[Task]) -> list[str | None]:
        """The family's built-in correct reply for each task (None where it has none)."""
        family = self._api.family(self.env_id, **self.family_kwargs)
        return [family.reference_response(family.task_by_id(t.example_id, t.env_state.get("split")))
                for t in tasks]


def _privileged(result: object, max_chars: int) -> str:
    """The privileged feedback of a resd_envs result ("" when the env offers none): an attribute of
    that name, else ``result.extra["privileged_feedback"]``."""
    text = getattr(result, "privileged_feedback", None)
    if text is None:
        text = (getattr(result, "extra", None) or {}).get("privileged_feedback")
    return cap_text(str(text), max_chars) if text else ""


class GymTaskSource:
    """Any gymnasium id: one env per prompt, ``reset(seed=, options=)`` for prompts, ``step`` to score.

    See the module docstring for the env contract (text spaces, deterministic reset, ``info`` keys).
    """

    def __init__(
        self,
        env_id: str,
        *,
        make_kwargs: dict[str, Any] | None = None,
        reset_options: dict[str, Any] | None = None,
        seeds: dict[str, int] | None = None,
        split_kwargs: dict[str, dict[str, Any]] | None = None,
        split_option: str | None = None,
        reward_mode: str = "binary",
        max_feedback_chars: int = 2000,
    ) -> None:
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode={reward_mode!r}: use one of {list(REWARD_MODES)}")
        self.env_id = env_id
        self.make_kwargs = make_kwargs or {}
        self.reset_options = reset_options or {}
        self.seeds = seeds or {}
        self.split_kwargs = split_kwargs or {}
        self.split_option = split_option
        self.reward_mode = reward_mode
        self.max_feedback_chars = max_feedback_chars
        try:
            if ":" not in env_id:  # 'module:ns/Name-vN' is resolved by gymnasium.make (it imports the module)
                gymnasium.spec(env_id)
        except gymnasium.error.Error as exc:
            raise ValueError(f"env.id={env_id!r} is not a registered gymnasium id ({exc}); "
                             "use 'module:ns/Name-vN' to import the module that registers it") from exc

    def _reset(self, split: str, seed: int) -> tuple[gymnasium.Env, Any, dict[str, Any]]:
        env = gymnasium.make(self.env_id, **{**self.make_kwargs, **self.split_kwargs.get(split, {})})
        options = dict(self.reset_options)
        if self.split_option:
            options[self.split_option] = split
        observation, info = env.reset(seed=seed, options=options or None)
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
            env, observation, info = self._reset(split, base + index)
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
                            env_state={"seed": base + index, "split": split}))
        return out

    def score(self, tasks: Sequence[Task], responses: Sequence[str]) -> list[Score]:
        if len(tasks) != len(responses):
            raise ValueError(f"score got {len(tasks)} tasks but {len(responses)} responses; pass one of each")
        out = []
        for task, response in zip(tasks, responses):
            env, _, _ = self._reset(str(task.env_state.get("split", "")), int(task.env_state["seed"]))
            try:
                observation, reward, _, _, info = env.step(response)
            finally:
                env.close()
            out.append(self._score(float(reward), observation, info))
        return out

    def _score(self, reward: float, observation: Any, info: dict[str, Any]) -> Score:
        """A :class:`Score` from one ``step`` result under ``reward_mode`` and the feedback cap."""
        passed = bool(info.get("passed", reward >= 1.0))
        score = float(info.get("score", reward))
        feedback = info.get("feedback", observation if isinstance(observation, str) else "")
        privileged = info.get("privileged_feedback")
        return Score(reward=float(passed) if self.reward_mode == "binary" else score, score=score, passed=passed,
                     feedback=cap_text(str(feedback or ""), self.max_feedback_chars),
                     error_type=info.get("error_type"), num_tests=int(info.get("num_tests", 1) or 1),
                     privileged_feedback=cap_text(str(privileged), self.max_feedback_chars) if privileged else "")

"""reasoning-gym tasks as gymnasium text envs, with the resd env contract (ids ``rg/<task>-v0``).

Importing this module registers one gymnasium id per reasoning-gym dataset (``rg/leg_counting-v0``,
...), so ``gymnasium.make("resd_envs.integrations.reasoning_gym:rg/leg_counting-v0")`` works with no
other import, and ``resd-learn`` takes that string as ``env.id``. :func:`register_reasoning_gym`
registers ids explicitly (also with your own defaults); the adapters in
:mod:`resd_envs.integrations` register ``rg/...`` ids on first use.

Episode (as :class:`resd_envs.core.env.TaskEnv`): ``reset`` picks a task and returns its question
plus an instruction to put the final answer in ``<answer>...</answer>``; ``step(response)`` extracts
the last answer block and scores it with the dataset's own ``score_answer`` (a credit in [0, 1]).

Tasks and splits: a split is a reasoning-gym dataset of ``size`` items generated from
``seed + SPLIT_SEED_OFFSETS[split]``; a task is one index of it, with id ``<task>/<split>/<index>``.
reasoning-gym generates item i from the dataset seed and i, so the two splits are different draws
from the same generator: a task whose space is small can produce the same question in both.

Requires ``pip install "resd[reasoning-gym]"``.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium

from resd_envs.core.env import TextEnv
from resd_envs.core.results import PRIVILEGED, Evaluation, TestResult, cap_text
from resd_envs.errors import ConfigError, MissingDependencyError, UnknownEnvError, UnknownTaskError

try:
    import reasoning_gym
    from reasoning_gym.factory import DATASETS
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        'the reasoning-gym bridge needs the reasoning-gym package: pip install "resd[reasoning-gym]"'
    ) from exc

#: Namespace of the bridged ids.
NAMESPACE = "rg"
#: Added to the base seed of each split's dataset (far apart, so the index ranges never share a seed).
SPLIT_SEED_OFFSETS: dict[str, int] = {"train": 0, "test": 1_000_000_007}
#: Items per split unless ``size=`` says otherwise.
DEFAULT_SIZE = 1000
#: Appended to every question: where the scorer looks for the final answer.
ANSWER_INSTRUCTION = (
    "Think it through, then write only your final answer between <answer> and </answer> tags, "
    "for example <answer>42</answer>."
)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ID_RE = re.compile(r"^(?:[\w.]+:)?rg/(?P<task>\w+)-v0$")
_ENTRY_POINT = "resd_envs.integrations.reasoning_gym:ReasoningGymEnv"


def available_tasks() -> list[str]:
    """Names of every reasoning-gym dataset, sorted."""
    return sorted(DATASETS)


def env_id_for(task: str) -> str:
    """The gymnasium id of a reasoning-gym task, e.g. ``rg/leg_counting-v0``."""
    return f"{NAMESPACE}/{task}-v0"


def task_name_of(env_id: str) -> str:
    """The reasoning-gym task of an ``rg/<task>-v0`` id (a ``module:`` prefix is allowed)."""
    match = _ID_RE.match(env_id)
    if match is None:
        raise UnknownEnvError(
            f"{env_id!r} is not a reasoning-gym id; use 'rg/<task>-v0', e.g. 'rg/leg_counting-v0'"
        )
    return _check_task(match.group("task"))


def register_reasoning_gym(task: str | None = None, **defaults: Any) -> str | list[str]:
    """Register ``rg/<task>-v0`` (every task when ``task`` is None) and return the id(s).

    ``defaults`` become the id's default constructor kwargs (``size``, ``seed``, ``config``, ...);
    ``gymnasium.make`` kwargs still override them. Registering an id again replaces its defaults.
    """
    if task is None:
        return [register_reasoning_gym(name, **defaults) for name in available_tasks()]  # type: ignore[misc]
    name = _check_task(task)
    env_id = env_id_for(name)
    kwargs = {"task": name, **defaults}
    spec = gymnasium.registry.get(env_id)
    if spec is None or spec.kwargs != kwargs:
        gymnasium.registry.pop(env_id, None)
        gymnasium.register(id=env_id, entry_point=_ENTRY_POINT, kwargs=kwargs)
    return env_id


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` for an ``rg/<task>-v0`` id, registering it first when needed."""
    task = task_name_of(env_id)
    bare = env_id_for(task)
    if bare not in gymnasium.registry:
        register_reasoning_gym(task)
    return gymnasium.make(bare, **kwargs)


class ReasoningGymEnv(TextEnv):
    """One reasoning-gym task as a single-task text environment.

    ## Action space / observation space
    ``AnyText``: the model's response; the prompt after ``reset`` and the feedback after ``step``.

    ## Rewards
    ``binary``: 1.0 when ``score_answer`` gives full credit (1.0), else 0.0. ``pass_rate``: the credit
    itself (reasoning-gym grades some answers between 0 and 1).

    ## Info
    ``reset``: ``task_id``, ``env_id``, ``env_version``, ``split``, ``messages``. ``step``: the keys of
    :data:`resd_envs.core.env.STEP_INFO_KEYS`; there is one test case (``"answer"``), ``score`` is the
    credit, ``error_type`` is ``None`` (full credit), ``"format_error"`` (no answer block) or
    ``"wrong_answer"``. The feedback never contains the expected answer; ``privileged_feedback`` does
    (and so does the observation at ``feedback="privileged"``, refused with ``max_attempts > 1``).

    ## Arguments
    task: a reasoning-gym dataset name (see :func:`available_tasks`).
    split: ``"train"`` or ``"test"``.
    reward_mode, max_attempts, feedback, max_feedback_chars, render_mode: as for resd envs.
    size: items per split (the task index range).
    seed: base seed of the generated datasets.
    config: extra fields of the dataset's config dataclass (e.g. ``{"max_animals": 5}``).

    ## Reset options
    ``{"task_index": i}``: item i of the env's split. ``{"task_id": "<task>/<split>/<index>"}``: that
    item, of either split (ids name their split, and scoring by id works across splits as
    :func:`resd_envs.verify` does). Otherwise the index is drawn from the env's RNG, so
    ``reset(seed=s)`` is deterministic.
    """

    def __init__(
        self,
        task: str,
        split: str = "train",
        reward_mode: str = "binary",
        max_attempts: int = 1,
        feedback: str = "full",
        max_feedback_chars: int = 4000,
        size: int = DEFAULT_SIZE,
        seed: int = 0,
        config: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        name = _check_task(task)
        problems = []
        if split not in SPLIT_SEED_OFFSETS:
            problems.append(f"split={split!r}: use one of {', '.join(SPLIT_SEED_OFFSETS)}")
        if not isinstance(size, int) or not 1 <= size < SPLIT_SEED_OFFSETS["test"]:
            problems.append(f"size={size!r}: use an integer in [1, {SPLIT_SEED_OFFSETS['test']})")
        if not isinstance(seed, int) or seed < 0:
            problems.append(f"seed={seed!r}: use an integer >= 0")
        self._configure(
            env_id_for(name),
            reward_mode=reward_mode,
            max_attempts=max_attempts,
            feedback=feedback,
            max_feedback_chars=max_feedback_chars,
            render_mode=render_mode,
            problems=problems,
        )
        self.task_name = name
        self.env_id = env_id_for(name)
        self.split = split
        self.size = size
        self._config = dict(config or {})
        self._seed = seed
        self._datasets: dict[str, Any] = {}
        self.dataset = self._dataset(split)
        self._items: dict[tuple[str, int], dict[str, Any]] = {}
        self._current: tuple[str, int] | None = None

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._current = self._choose_task(options or {})
        self._begin_episode(f"{self._item(self._current)['question'].rstrip()}\n\n{ANSWER_INSTRUCTION}")
        info = {
            "task_id": self._task_id(self._current),
            "env_id": self.env_id,
            "env_version": f"reasoning-gym-{_rg_version()}",
            "split": self._current[0],
            "messages": [{"role": "user", "content": self._last_text}],
        }
        return self._last_text, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        response = self._begin_attempt(action)
        assert self._current is not None
        split, index = self._current
        entry = self._item(self._current)
        answers = _ANSWER_RE.findall(response)
        answer = answers[-1].strip() if answers else None
        if answer is None:
            credit, error_type = 0.0, "format_error"
        else:
            credit = _credit(self._dataset(split), answer, entry)
            error_type = None if credit >= 1.0 else "wrong_answer"
        passed = error_type is None
        evaluation = Evaluation(
            (TestResult("answer", passed, "full credit" if passed else f"credit {credit:.2f}", credit),),
            error_type,
            self._feedback(answer, credit, passed, entry, self.feedback_detail),
            extra={"rg_task": self.task_name, "rg_index": index, "extracted_answer": answer},
            privileged_feedback=self._feedback(answer, credit, passed, entry, PRIVILEGED),
        )
        return self._end_attempt(evaluation, self._task_id(self._current))

    # -- helpers ------------------------------------------------------------------------------
    def _task_id(self, task: tuple[str, int]) -> str:
        return f"{self.task_name}/{task[0]}/{task[1]}"

    def _dataset(self, split: str) -> Any:
        dataset = self._datasets.get(split)
        if dataset is None:
            seed = self._seed + SPLIT_SEED_OFFSETS[split]
            dataset = self._datasets[split] = _create_dataset(self.task_name, self._config, seed, self.size)
        return dataset

    def _item(self, task: tuple[str, int]) -> dict[str, Any]:
        item = self._items.get(task)
        if item is None:
            item = self._items[task] = self._dataset(task[0])[task[1]]
        return item

    def _choose_task(self, options: dict[str, Any]) -> tuple[str, int]:
        unknown = set(options) - {"task_id", "task_index"}
        if unknown:
            raise ConfigError(
                f"unknown reset option(s) {sorted(unknown)}; supported: 'task_id', 'task_index'"
            )
        if "task_id" in options:
            task_id = str(options["task_id"])
            parts = task_id.split("/")
            if (len(parts) != 3 or parts[0] != self.task_name or parts[1] not in SPLIT_SEED_OFFSETS
                    or not parts[2].isdigit() or int(parts[2]) >= self.size):
                raise UnknownTaskError(
                    f"task id {task_id!r} is not a task of {self.env_id}: ids look like "
                    f"'{self.task_name}/<split>/<index>' with split in {sorted(SPLIT_SEED_OFFSETS)} "
                    f"and index < size={self.size}"
                )
            return parts[1], int(parts[2])
        if "task_index" in options:
            index = options["task_index"]
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < self.size:
                raise UnknownTaskError(
                    f"task_index {index!r} is out of range for {self.env_id} with size={self.size}"
                )
            return self.split, index
        return self.split, int(self.np_random.integers(self.size))

    def _feedback(
        self, answer: str | None, credit: float, passed: bool, entry: dict[str, Any], detail: str
    ) -> str:
        """The feedback at ``detail``, capped at ``max_feedback_chars``."""
        if answer is None:
            text = "No final answer found: put it between <answer> and </answer>."
            if detail == "minimal":
                return "Incorrect."
        elif passed:
            text = "Correct."
        elif detail == "minimal":
            return "Incorrect."
        elif detail == "summary":
            text = f"Incorrect (credit {credit:.2f} of 1)."
        else:
            shown = answer if len(answer) <= 200 else answer[:200] + "..."
            text = f"Incorrect (credit {credit:.2f} of 1). Your final answer was: {shown}"
        if detail == PRIVILEGED:  # the teacher's level, never shown to the policy
            text += f"\nExpected answer: {entry['answer']}"
        return cap_text(text, self.max_feedback_chars)


# -- internals --------------------------------------------------------------------------------
def _check_task(task: str) -> str:
    if task not in DATASETS:
        import difflib

        close = difflib.get_close_matches(str(task), list(DATASETS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownEnvError(
            f"{task!r} is not a reasoning-gym task.{hint} See available_tasks() for all {len(DATASETS)}"
        )
    return task


def _create_dataset(task: str, config: dict[str, Any], seed: int, size: int) -> Any:
    for reserved in ("seed", "size"):
        if reserved in config:
            raise ConfigError(f"config[{reserved!r}] is set by the env: pass {reserved}= to the env instead")
    try:
        return reasoning_gym.create_dataset(task, seed=seed, size=size, **config)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"reasoning-gym rejected the config of {task!r} ({config}): {exc}") from exc


def _credit(dataset: Any, answer: str, entry: dict[str, Any]) -> float:
    """reasoning-gym's credit for ``answer``, clipped to [0, 1]; a scorer that raises gives 0."""
    try:
        value = float(dataset.score_answer(answer, entry))
    except Exception:  # the task's scorer choked on model text: no credit, never a crash
        return 0.0
    return min(1.0, max(0.0, value))


def _rg_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reasoning-gym")
    except PackageNotFoundError:  # pragma: no cover - a source checkout
        return str(getattr(reasoning_gym, "__version__", "unknown"))


register_reasoning_gym()

"""The task-family contract: what each benchmark provides to the shared env, ``verify`` and the CLI.

A family owns a task set (split -> ordered task rows), a scorer, and optionally reference
responses and pictures. It is constructed from plain keyword arguments (the env's extra kwargs),
must be picklable (verify ships it to worker processes), and must be deterministic: the same task
and response always give the same :class:`~resd_envs.core.results.Evaluation`.

Task rows are plain dicts with at least ``task_id`` (unique across all splits) and ``prompt``.
Everything needed to score a task lives in its row; nothing hidden sits in ``prompt``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from resd_envs.core.results import Evaluation
from resd_envs.errors import ConfigError, UnknownTaskError

Task = Mapping[str, Any]


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces, UTF-8 kept) used for hashing task sets."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_of_rows(rows: Sequence[Task]) -> str:
    """sha256 over the canonical JSON of each row, one per line, in order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(canonical_json(row).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def keyword_names(function: Callable[..., Any]) -> tuple[str, ...] | None:
    """The keyword arguments ``function`` accepts, or None when it takes ``**kwargs``."""
    names = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(parameter.name)
    return tuple(name for name in names if name != "self")


def check_keywords(
    kwargs: Mapping[str, Any], family_class: type[TaskFamily], *, where: str, also: Iterable[str] = ()
) -> None:
    """Raise ConfigError naming every unknown keyword and the valid ones (``also`` + the family's).

    Raises:
        ConfigError: a keyword that neither the caller (``also``) nor the family constructor takes.
    """
    accepted = keyword_names(family_class.__init__)
    if accepted is None:
        return
    valid = [*dict.fromkeys([*also, *accepted])]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}: unknown keyword argument(s) {', '.join(map(repr, unknown))} for {family_class.env_id}; "
            f"valid ones are {', '.join(valid)}"
        )


class TaskFamily(ABC):
    """Base class of a benchmark family (Manufactoria-Has, BouncingSim, Finer).

    Subclasses set the class attributes and implement :meth:`load_split` and :meth:`evaluate`.
    Task rows are cached per instance and dropped when pickled.
    """

    #: Registered gymnasium id, e.g. ``"resd/Manufactoria-Has-v0"``.
    env_id: ClassVar[str]
    #: Version tag of the task set + prompt + scoring, bumped with the id's ``-vN``.
    version: ClassVar[str]
    #: Names of the splits this family provides, in display order.
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    #: Whether scoring runs untrusted code in a sandbox (verify then prefers threads over processes).
    runs_code: ClassVar[bool] = False

    def __init__(self) -> None:
        self._rows: dict[str, tuple[Task, ...]] = {}
        self._index: dict[str, dict[str, int]] = {}

    # -- to implement -------------------------------------------------------------------------
    @abstractmethod
    def load_split(self, split: str) -> Sequence[Task]:
        """Return the ordered task rows of ``split`` (called once per split, then cached)."""

    @abstractmethod
    def evaluate(self, task: Task, response: str, *, detail: str = "full", max_chars: int = 4000) -> Evaluation:
        """Score ``response`` on ``task``; never raises for any response string.

        Args:
            task: a row of :meth:`tasks`.
            response: the full model response (any string, possibly with reasoning).
            detail: feedback detail of ``Evaluation.feedback``: ``"full"``, ``"summary"`` or
                ``"minimal"`` (policy-safe: no hidden expected output), or ``"privileged"`` (the
                revealing text, for a teacher or a human). ``Evaluation.privileged_feedback`` is
                always the privileged text.
            max_chars: cap on each feedback text's length (0 = no cap).
        """

    # -- optional hooks -----------------------------------------------------------------------
    def reference_response(self, task: Task) -> str | None:
        """A response that solves ``task`` (built-in reference solution), or None if unavailable."""
        return None

    def render_rgb(self, task: Task, response: str | None = None) -> Any:
        """An RGB picture (H, W, 3 uint8 numpy array) of the task, or None if the family draws nothing."""
        return None

    def export_row(self, task: Task) -> dict[str, Any]:
        """A copy of ``task`` for :func:`resd_envs.load_tasks`, each column of one type across rows.

        Families whose rows hold a field of varying shape override this (e.g. Manufactoria's
        ``params`` becomes JSON text). The cached row itself, and so the task-set checksum, is unchanged.
        """
        return dict(task)

    def describe(self) -> dict[str, Any]:
        """Extra facts for ``resd-envs list/check`` (e.g. the sandbox tier in use)."""
        return {}

    # -- provided -----------------------------------------------------------------------------
    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise ConfigError(
                f"{self.env_id} has no split {split!r}; choose one of {', '.join(self.splits)}"
            )
        return split

    def tasks(self, split: str) -> tuple[Task, ...]:
        """The cached, ordered task rows of ``split``."""
        self.check_split(split)
        if split not in self._rows:
            rows = tuple(self.load_split(split))
            self._rows[split] = rows
            self._index[split] = {str(r["task_id"]): i for i, r in enumerate(rows)}
        return self._rows[split]

    def task_by_id(self, task_id: str, split: str | None = None) -> Task:
        """Find a task by id in ``split`` (or in every split when None)."""
        for name in (split,) if split else self.splits:
            rows = self.tasks(name)
            index = self._index[name].get(str(task_id))
            if index is not None:
                return rows[index]
        where = f"split {split!r}" if split else f"any split ({', '.join(self.splits)})"
        raise UnknownTaskError(
            f"task id {task_id!r} is not in {where} of {self.env_id}; "
            f"list ids with `resd-envs show {self.env_id} --list`"
        )

    def task_set_sha256(self, split: str) -> str:
        """sha256 of the canonical JSON of the split's rows (see :func:`sha256_of_rows`)."""
        return sha256_of_rows(self.tasks(split))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_rows"] = {}
        state["_index"] = {}
        return state

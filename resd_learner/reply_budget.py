"""Does the reply budget hold the answers? A check of ``rollout.max_tokens`` against reference replies.

An env that knows a correct reply for each task (resd_envs families' ``reference_response``) tells how
many tokens a passing reply can need. When that is more than the generation budget, the task can only
pass with a shorter correct reply, and on tasks whose answer is a fixed string (FinerMini's
``<answer>TAG</answer>``) it can never pass: the validation score has a ceiling under 1 that no training
can lift, and a reply cut off inside a long answer reads as "no answer". The quickstart ran for weeks
with a 32-token budget under which 7 of its 128 validation answers did not fit (36-40 tokens).

:func:`check_reply_budget` counts such tasks; the trainer logs one warning per split before training
starts (:func:`budget_warnings`). Envs without reference replies (any gymnasium id) are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resd_learner.types import Task


@dataclass(frozen=True)
class ReplyBudgetCheck:
    """The reference replies of one split measured against a token budget.

    Attributes:
        split: the split's name (for the message).
        max_tokens: the budget, in tokens of the model's tokenizer.
        checked: tasks that have a reference reply.
        over: the ones whose reference reply is longer than ``max_tokens``.
        longest: the longest reference reply, in tokens (0 when none was checked).
        example_ids: up to three ids of tasks over the budget, longest first.
    """

    split: str
    max_tokens: int
    checked: int
    over: int
    longest: int
    example_ids: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return self.over == 0

    def message(self, setting: str) -> str:
        """One warning line naming the setting to raise (``setting``: e.g. ``rollout.max_tokens``)."""
        return (
            f"{setting}={self.max_tokens}: the reference reply of {self.over} of {self.checked} {self.split} tasks "
            f"is longer (longest {self.longest} tokens; e.g. {', '.join(self.example_ids)}); a correct reply may "
            f"need as many tokens, so these tasks may never pass. Raise {setting} to at least {self.longest}."
        )


def check_reply_budget(tasks: Sequence[Task], references: Sequence[str | None], tokenizer: Any, max_tokens: int,
                       split: str) -> ReplyBudgetCheck:
    """Count the tasks whose reference reply has more than ``max_tokens`` tokens.

    Args:
        tasks: the split's tasks, aligned with ``references``.
        references: a correct reply per task, or None where the env has none (skipped).
        tokenizer: the model's tokenizer (a callable returning ``input_ids``); replies are encoded
            without special tokens, as the engine counts generated tokens.
        max_tokens: the generation budget.
        split: the split's name.
    """
    if len(tasks) != len(references):
        raise ValueError(f"check_reply_budget got {len(tasks)} tasks but {len(references)} references")
    lengths = [(len(tokenizer(ref, add_special_tokens=False)["input_ids"]), task.example_id)
               for task, ref in zip(tasks, references) if ref is not None]
    over = sorted((item for item in lengths if item[0] > max_tokens), key=lambda item: (-item[0], item[1]))
    return ReplyBudgetCheck(split=split, max_tokens=max_tokens, checked=len(lengths), over=len(over),
                            longest=max((n for n, _ in lengths), default=0),
                            example_ids=tuple(example_id for _, example_id in over[:3]))


def budget_warnings(source: Any, tokenizer: Any, splits: Sequence[tuple[str, Sequence[Task], int, str]]) -> list[str]:
    """Warning lines for the splits whose reference replies do not fit their budgets.

    Args:
        source: the task source; checked only if it has ``reference_replies(tasks)``.
        tokenizer: the model's tokenizer.
        splits: ``(split name, tasks, max_tokens, setting name)`` per split.
    """
    replies = getattr(source, "reference_replies", None)
    if replies is None:
        return []
    out = []
    for split, tasks, max_tokens, setting in splits:
        if not tasks:
            continue
        check = check_reply_budget(tasks, replies(tasks), tokenizer, max_tokens, split)
        if not check.fits:
            out.append(check.message(setting))
    return out

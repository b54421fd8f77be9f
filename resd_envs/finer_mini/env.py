"""The gymnasium env of FinerMini: ``TaskEnv`` around :class:`~resd_envs.finer_mini.family.FinerMiniFamily`."""

from __future__ import annotations

from typing import ClassVar

from resd_envs.core.env import TaskEnv
from resd_envs.core.family import TaskFamily
from resd_envs.finer_mini.family import FinerMiniFamily


class FinerMiniEnv(TaskEnv):
    """FinerMini (small-model variant of Finer, not the benchmark): tag one entity, 4 candidate tags.

    ## Description
    One episode is one FiNER-139 question: an entity token (mostly a number), up to 240 characters
    of its SEC-filing sentence, and 4 candidate US-GAAP tags (the gold tag and 3 random others).
    The model answers with one tag inside ``<answer></answer>``.

    ## Rewards
    1.0 when the tag read from the answer is the gold tag, else 0.0 (one test case, ``q1``, so
    ``binary`` and ``pass_rate`` agree). Chance level is 0.25 for a well-formed answer.

    ## Feedback
    The observation says right / wrong / no answer read; ``info["privileged_feedback"]`` adds the
    gold tag, ``The correct tag is TAG.`` (for a teacher or reflector); ``make(...,
    gold_feedback="reply")`` writes it as the expected reply instead, ``The correct reply is
    <answer>TAG</answer>.``. ``make(..., wrong_feedback="kind")`` adds to a wrong tag's feedback, when
    the tag measures another kind of value than the gold (money, percentage, shares, per-share amount,
    duration, count, date, area), the general rule it broke: ``A number of shares needs a share-count
    tag, not a rate or percentage tag.`` (:mod:`resd_envs.finer_mini.kinds`).

    ## Version History
    * v0: tasks derived from ACE's two FiNER files with seed 0 (``resd_envs.finer_mini.build``).
      Since 2026-12-03 ``gold_feedback="reply"`` and ``wrong_feedback="kind"`` are available; the
      default output is unchanged.
    """

    family_class: ClassVar[type[TaskFamily]] = FinerMiniFamily

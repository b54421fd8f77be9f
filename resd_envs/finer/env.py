"""The gymnasium env of Finer: ``TaskEnv`` around :class:`~resd_envs.finer.family.FinerFamily`."""

from __future__ import annotations

from typing import Any, ClassVar

from resd_envs.core.env import TaskEnv
from resd_envs.core.family import TaskFamily
from resd_envs.finer.family import FinerFamily


class FinerEnv(TaskEnv):
    """FiNER-139 XBRL tagging: name the US-GAAP tag of 4 entity tokens in SEC filing sentences.

    ## Description
    One episode is one ACE record: a list of 139 candidate tags and 4 numbered questions, each
    asking for the tag of one token (mostly a number) in one sentence. The model answers with the 4
    tags, comma-separated, in question order. Scoring is ACE's: split on commas, strip, lower-case,
    compare position by position; missing answers are wrong, extra ones are ignored.

    ## Action space
    ``AnyText``: the full model response. Thinking blocks are skipped; the answer is taken from
    ``<answer>...</answer>``, a JSON ``final_answer``, ``\\boxed{}``, "final answer:" or the last
    line of tags (see :mod:`resd_envs.finer.extract`).

    ## Observation space
    ``AnyText``: the prompt after ``reset`` (the record's context, by default followed by a request
    for ``<answer>`` tags; ``prompt_style="raw"`` gives the context alone); the feedback after ``step``.

    ## Rewards
    ``reward_mode="binary"``: 1.0 when all 4 tags are right (ACE's per-task / sample accuracy).
    ``"pass_rate"``: the fraction of right tags, 0, 0.25, 0.5, 0.75 or 1 (ACE's entity accuracy and
    RESD's training reward). ``info["test_results"]`` has one entry per question (``q1``..``q4``).

    ## Starting state
    ``reset`` draws a record of the split with the env's seeded generator, or takes
    ``options={"task_id": ...}`` / ``options={"task_index": ...}``.

    ## Episode end
    ``terminated=True`` once all tags are right or ``max_attempts`` attempts were made; later
    attempts see the feedback. ``truncated`` is always False.

    ## Arguments
    split: ``"test"`` (default here, unlike other resd envs: the 500-record file RESD reports on is the
        one most users have), ``"train"``, ``"test_subset"``, a name from ``files`` or ``"file:/path.jsonl"``.
    reward_mode, max_attempts, feedback, max_feedback_chars, render_mode: as for every resd env.
    data_dir / data_path: folder with the data files (default: ``$RESD_FINER_DATA``).
    files: extra splits, ``{"name": "/path/file.jsonl"}``.
    prompt_style: ``"answer_tags"`` (default) or ``"raw"``.
    feedback_style: ``"detailed"`` (default), ``"ace"`` or ``"resd"``. reveal_gold: gold tags in the
        privileged text (True).

    ## Feedback
    The observation never shows a gold tag at ``feedback="full"`` (default), ``"summary"`` or
    ``"minimal"``. ``info["privileged_feedback"]`` has them (ACE's reflector / RESD's teacher input);
    ``feedback="privileged"`` is refused with ``max_attempts > 1``.

    ## Version History
    * v0: ACE's FiNER records and scoring; RESD's test split = ACE's 500-record val file.
    """

    family_class: ClassVar[type[TaskFamily]] = FinerFamily

    def __init__(self, split: str = "test", **kwargs: Any) -> None:
        super().__init__(split=split, **kwargs)

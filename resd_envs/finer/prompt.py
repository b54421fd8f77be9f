"""The prompt shown to the model for one FiNER record.

Two styles:

* ``"answer_tags"`` (default): the record's ``context`` verbatim, then a short instruction of ours
  asking the model to think and to put the final tags inside ``<answer></answer>``. RESD also
  wrapped the ACE record and asked for ``<answer>`` tags; this wording is our own.
* ``"raw"``: the record's ``context`` verbatim and nothing else (exactly what ACE's files hold).

Scoring accepts either form of reply (see :mod:`resd_envs.finer.extract`).
"""

from __future__ import annotations

PROMPT_STYLES: tuple[str, ...] = ("answer_tags", "raw")


def build_prompt(context: str, num_questions: int, style: str = "answer_tags") -> str:
    """The prompt text for a record with ``num_questions`` questions in the given ``style``."""
    if style == "raw":
        return context
    example = ",".join(f"Tag{i + 1}" for i in range(num_questions))
    return (
        f"{context}\n\n"
        f"Work out each answer, then write your final answer as exactly {num_questions} tags from the "
        "list above, separated by commas and in the order of the questions, inside <answer></answer>. "
        f"Shape of the final answer: <answer>{example}</answer>"
    )


def reference_answer(target: str, style: str = "answer_tags") -> str:
    """The gold ``target`` written the way a model is asked to answer in ``style``."""
    if style == "raw":
        return target
    return f"<answer>{target}</answer>"

"""ACE's FiNER scoring: positional, case-insensitive comparison of comma-separated tags.

Rules (identical to ACE's ``finer`` accuracy and RESD's reward):

* the answer and the gold string are both split on ``,``; each piece is stripped of surrounding
  whitespace and lower-cased;
* pieces are compared position by position (order matters, no set matching);
* a missing answer piece counts as wrong; pieces beyond the number of gold tags are dropped;
* nothing else is normalised: ``"Revenues."`` is not ``"revenues"``, ``"1. Revenues"`` is not
  ``"revenues"``.

Per-test-case score = fraction of gold positions matched; per-task = every position matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from resd_envs.finer.extract import Extraction, extract_answer
from resd_envs.finer.labels import LABELS


@dataclass(frozen=True)
class FinerScore:
    """The verdict on one answer.

    Attributes:
        correct: one bool per gold tag (question), in order.
        predicted: the answer pieces aligned to the gold positions (stripped, case kept; ``""``
            where the answer had no piece); extra pieces are not included.
        gold: the gold tags (stripped, case kept).
        num_answers: how many comma-separated pieces the answer had (0 if no answer was found).
        extraction: how the answer was located in the response.
    """

    correct: tuple[bool, ...]
    predicted: tuple[str, ...]
    gold: tuple[str, ...]
    num_answers: int
    extraction: Extraction = field(default_factory=lambda: Extraction(None, "empty"))

    @property
    def num_correct(self) -> int:
        return sum(self.correct)

    @property
    def per_test_case(self) -> float:
        """Fraction of questions answered correctly (ACE's entity-level accuracy for this record)."""
        return self.num_correct / len(self.correct) if self.correct else 0.0

    @property
    def per_task(self) -> bool:
        """True only when every question is answered correctly (ACE's sample-level correctness)."""
        return bool(self.correct) and all(self.correct)

    @property
    def answer(self) -> str | None:
        """The extracted answer string, or None when no answer was found."""
        return self.extraction.answer

    @property
    def extra_answers(self) -> tuple[str, ...]:
        """Answer pieces beyond the number of gold tags (ignored by the score)."""
        if self.answer is None:
            return ()
        return tuple(piece.strip() for piece in self.answer.split(","))[len(self.gold):]


def gold_tags(target: str | Sequence[str]) -> tuple[str, ...]:
    """The gold tags of a target given as a comma-joined string or as a sequence of tags."""
    if isinstance(target, str):
        return tuple(piece.strip() for piece in target.split(","))
    return tuple(str(tag).strip() for tag in target)


def compare(answer: str | None, target: str | Sequence[str]) -> tuple[tuple[bool, ...], tuple[str, ...], int]:
    """ACE's comparison of an already extracted answer string with the gold tags.

    Returns:
        (correct per gold position, answer pieces aligned to the gold positions, number of pieces).
        ``None`` (no answer) matches nothing and has 0 pieces.
    """
    gold = gold_tags(target)
    pieces = [] if answer is None else [piece.strip() for piece in answer.split(",")]
    aligned = tuple(pieces[i] if i < len(pieces) else "" for i in range(len(gold)))
    correct = tuple(
        i < len(pieces) and aligned[i].lower() == gold[i].lower() for i in range(len(gold))
    )
    return correct, aligned, len(pieces)


def score(response: str, target: str | Sequence[str], labels: tuple[str, ...] = LABELS) -> FinerScore:
    """Extract the answer from a model response and score it against ``target`` the ACE way.

    Args:
        response: the full model response (thinking, JSON, ``<answer>`` tags and prose allowed).
        target: the gold tags, comma-joined (the record's ``target``) or as a sequence.
        labels: valid tag names (used only to locate a bare line of tags in free text).

    Returns:
        a :class:`FinerScore` with ``.correct``, ``.per_test_case`` and ``.per_task``.
    """
    extraction = extract_answer(response, labels)
    correct, aligned, count = compare(extraction.answer, target)
    return FinerScore(correct, aligned, gold_tags(target), count, extraction)

"""Feedback text and per-question results for a scored FiNER answer.

Three styles:

* ``"detailed"`` (default, goes beyond ACE): a score line, format problems ("expected 4
  comma-separated tags, got 3"), then one line per question saying right or wrong with the
  predicted and the gold tag, tags that are not in the label set with the closest valid tags, and
  a flag on ambiguous questions (the entity token occurs more than once in its sentence). The
  ``detail`` level trims it: ``"full"`` adds the entity and a window of its sentence,
  ``"summary"`` keeps one short line per question, ``"minimal"`` keeps the score and format lines.
* ``"ace"``: what ACE's reflector is given, for exact reproduction: correct/incorrect at sample
  level, the extracted prediction and the full gold string. No per-question breakdown.
* ``"resd"``: what RESD's reward function returns: empty when all tags are right, else "partially
  correct"/"completely incorrect" plus the gold string, or a format message when no answer was found.

With ``reveal_gold=False`` the gold tags are left out of every style (ACE's no-ground-truth mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from resd_envs.core.results import TestResult
from resd_envs.finer.labels import LABELS, canonical_label, closest_labels
from resd_envs.finer.records import Question
from resd_envs.finer.scoring import FinerScore

FEEDBACK_STYLES: tuple[str, ...] = ("detailed", "ace", "resd")
#: Characters of sentence shown on each side of the entity in ``"full"`` detail.
SENTENCE_WINDOW = 90


@dataclass(frozen=True)
class QuestionVerdict:
    """Everything known about one question after scoring (used for messages and ``extra``)."""

    number: int
    correct: bool
    predicted: str
    gold: str
    missing: bool
    valid: bool
    closest: tuple[str, ...]
    question: Question | None

    @property
    def flags(self) -> list[str]:
        out = []
        if self.missing:
            out.append("missing")
        elif not self.valid:
            out.append("invalid_tag")
        if self.question is not None and self.question.ambiguous:
            out.append("ambiguous")
        return out


def verdicts(
    result: FinerScore, questions: Sequence[Question], labels: tuple[str, ...] = LABELS
) -> list[QuestionVerdict]:
    """One :class:`QuestionVerdict` per gold position (``questions`` may be empty if unparsed)."""
    out = []
    for i, gold in enumerate(result.gold):
        predicted = result.predicted[i]
        missing = i >= result.num_answers
        valid = canonical_label(predicted, labels) is not None
        closest = () if missing or valid else tuple(closest_labels(predicted, labels))
        question = questions[i] if i < len(questions) else None
        out.append(
            QuestionVerdict(i + 1, result.correct[i], predicted, gold, missing, valid, closest, question)
        )
    return out


def format_problems(result: FinerScore) -> list[str]:
    """Sentences describing answer-format problems (empty when the answer has the right shape)."""
    n = len(result.gold)
    method = result.extraction.method
    if result.answer is None:
        if method == "unterminated_thinking":
            text = (
                "No answer found: the response ends inside an unclosed thinking block (it was probably cut "
                f"off while reasoning). Finish thinking and then give the {n} tags."
            )
            return [text]
        return [f"No answer found: the response is empty. Give {n} comma-separated tags."]
    if not result.answer.strip():
        return [f"The answer is empty: expected {n} comma-separated tags."]
    if result.num_answers < n:
        got = result.num_answers
        return [f"Format: expected {n} comma-separated tags, got {got}; missing answers count as wrong."]
    if result.num_answers > n:
        extra = ", ".join(_quote(piece) for piece in result.extra_answers)
        text = (
            f"Format: expected {n} comma-separated tags, got {result.num_answers}; only the first {n} "
            f"were scored and the rest ({extra}) were ignored."
        )
        return [text]
    return []


def error_type(result: FinerScore) -> str | None:
    """``None`` when every tag is right, ``"format_error"`` when no answer was found or the number
    of tags is wrong (and not every scored tag is right), else ``"wrong_answer"``."""
    if result.per_task:
        return None
    if result.answer is None or not result.answer.strip() or result.num_answers != len(result.gold):
        return "format_error"
    return "wrong_answer"


def question_results(items: Sequence[QuestionVerdict], *, reveal_gold: bool = True) -> tuple[TestResult, ...]:
    """One :class:`TestResult` per question (id ``q1``...), its message carrying the question's flags."""
    return tuple(
        TestResult(id=f"q{v.number}", passed=v.correct, message=_short_line(v, reveal_gold))
        for v in items
    )


def render(
    result: FinerScore,
    items: Sequence[QuestionVerdict],
    *,
    style: str = "detailed",
    detail: str = "full",
    reveal_gold: bool = True,
    target: str | None = None,
) -> str:
    """The feedback text for one scored answer (uncapped; the caller applies ``max_chars``)."""
    gold_string = target if target is not None else ",".join(result.gold)
    if style == "ace":
        return _render_ace(result, gold_string, reveal_gold)
    if style == "resd":
        return _render_resd(result, gold_string, reveal_gold)
    return _render_detailed(result, items, detail, reveal_gold)


# -- styles -------------------------------------------------------------------------------------
def _render_detailed(
    result: FinerScore, items: Sequence[QuestionVerdict], detail: str, reveal_gold: bool
) -> str:
    n = len(result.gold)
    if result.per_task:
        head = f"All {n} tags are correct."
    else:
        head = (
            f"{result.num_correct}/{n} tags correct; a sample counts as solved only when all {n} are right."
        )
    lines = [head, *format_problems(result)]
    if detail == "minimal":
        return "\n".join(lines)
    for verdict in items:
        if detail == "summary":
            lines.append(_short_line(verdict, reveal_gold))
        else:
            lines.extend(_full_lines(verdict, reveal_gold))
    return "\n".join(lines)


def _render_ace(result: FinerScore, gold_string: str, reveal_gold: bool) -> str:
    verdict = "Correct" if result.per_task else "Incorrect"
    relation = "matches" if result.per_task else "does not match"
    lines = [f"{verdict}: the predicted answer {relation} the ground truth."]
    lines.append(f"Predicted answer: {result.answer if result.answer is not None else '(none found)'}")
    if reveal_gold:
        lines.append(f"Ground truth: {gold_string}")
    return "\n".join(lines)


def _render_resd(result: FinerScore, gold_string: str, reveal_gold: bool) -> str:
    if result.per_task:
        return ""
    n = len(result.gold)
    if result.answer is None:
        if result.extraction.method == "unterminated_thinking":
            return "The response was cut off before it gave a final answer."
        return (
            f"Format problem: no final answer found; give the {n} tags, comma-separated, "
            "inside <answer></answer>."
        )
    status = "Partially correct." if result.num_correct else "Completely incorrect."
    return f"{status} The correct tags are: {gold_string}" if reveal_gold else status


# -- lines --------------------------------------------------------------------------------------
def _short_line(v: QuestionVerdict, reveal_gold: bool) -> str:
    entity = f" entity {_quote(v.question.entity)}" if v.question is not None else ""
    if v.correct:
        text = f"Q{v.number} right:{entity} {v.gold}"
    else:
        got = "no answer" if v.missing else f"predicted {_quote(v.predicted)}"
        text = f"Q{v.number} wrong:{entity} {got}"
        if not v.missing and not v.valid:
            text += " (not a valid tag" + (f"; closest: {', '.join(v.closest)}" if v.closest else "") + ")"
        if reveal_gold:
            text += f", gold {v.gold}"
    if v.question is not None and v.question.ambiguous:
        q = v.question
        text += f" [ambiguous: {_quote(q.entity)} occurs {q.occurrences} times in the sentence]"
    return text


def _full_lines(v: QuestionVerdict, reveal_gold: bool) -> list[str]:
    mark = "right" if v.correct else "wrong"
    if v.question is not None:
        lines = [f"Q{v.number} {mark}: entity {_quote(v.question.entity)} in \"{_window(v.question)}\""]
    else:
        lines = [f"Q{v.number} {mark}:"]
    if v.missing:
        lines.append("    predicted: (no answer at this position)")
    else:
        note = ""
        if not v.valid:
            hint = f"; closest: {', '.join(v.closest)}" if v.closest else ""
            note = f" (not one of the valid tags{hint})"
        lines.append(f"    predicted: {v.predicted}{note}")
    if reveal_gold:
        lines.append(f"    gold:      {v.gold}")
    if v.question is not None and v.question.ambiguous:
        lines.append(
            f"    note: {_quote(v.question.entity)} occurs {v.question.occurrences} times in this sentence, "
            "so the question does not say which occurrence is meant"
        )
    return lines


def _window(question: Question) -> str:
    sentence, entity = question.sentence, question.entity
    tokens = sentence.split(" ")
    start = 0
    for i, token in enumerate(tokens):
        if token == entity:
            start = len(" ".join(tokens[:i])) + (1 if i else 0)
            break
    left = max(0, start - SENTENCE_WINDOW)
    right = min(len(sentence), start + len(entity) + SENTENCE_WINDOW)
    return ("..." if left else "") + sentence[left:right] + ("..." if right < len(sentence) else "")


def _quote(text: str) -> str:
    return '"' + text.replace("\n", " ") + '"'

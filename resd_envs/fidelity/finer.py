"""Finer fidelity: this installation's scoring against ACE's per-sample verdicts.

Row layout (ACE's per-sample test record plus the generator's raw reply; see ``docs/fidelity.md``):
``response`` (the model's full reply), ``target`` (the four gold tags, comma-joined) and
``is_correct`` (ACE's sample-level verdict), optionally ``final_answer`` (the answer ACE extracted)
and ``index``.

One check per row: it agrees when resd's all-four-correct verdict equals ``is_correct``. When it
does not, the row is re-judged with ACE's documented extraction (:func:`ace_extract`, or the row's
own ``final_answer``) and ACE's positional comparison: if that reproduces ``is_correct`` and the two
extractions differ, the difference is labelled a known extraction difference (resd also reads
``<answer>`` tags, skips thinking blocks and falls back to the last line; ACE answers
"No final answer found"). Anything else is unexplained.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from resd_envs.fidelity.report import Check, FidelityReport
from resd_envs.fidelity.rows import RowFormatError, need, short
from resd_envs.finer import score
from resd_envs.finer.scoring import compare

NO_ANSWER = "No final answer found"
_FINISH = re.compile(r"Finish\[(.*?)\]")
_PAIR_DOUBLE = re.compile(r'"final_answer"\s*:\s*"([^"]*)"')
_PAIR_SINGLE = re.compile(r"'final_answer'\s*:\s*'([^']*)'")
_PAIR_BARE = re.compile(r"['\"]final_answer['\"]\s*:\s*([^,}]+)")
_BOXED_START = re.compile(r"[Tt]he final answer is:?\s*\$?\\boxed\{")
_PHRASE = re.compile(r"[Tt]he final answer is:?\s*([^\n.]+)")
_BOXED_ONLY = re.compile(r"^\$?\\boxed\{([^}]+)\}\$?$")


@dataclass(frozen=True)
class FinerRow:
    line: int
    label: str
    response: str
    target: str
    is_correct: bool
    final_answer: str | None


def read_row(line: int, row: dict[str, Any], *, live: bool = False) -> FinerRow:
    """Validate one ACE log row.

    Raises:
        RowFormatError: a missing or ill-typed ``response``, ``target`` or ``is_correct``.
    """
    response = need(row, "response", str, "the model's full reply (ACE's generator response)")
    target = need(row, "target", str, 'the gold tags joined by commas, e.g. "Revenues,Goodwill,..."')
    if not target.strip():
        raise RowFormatError('"target" is empty; it should hold the gold tags joined by commas')
    is_correct = need(row, "is_correct", bool, "ACE's verdict, true or false")
    final = row.get("final_answer")
    if final is not None and not isinstance(final, str):
        raise RowFormatError('"final_answer" should be the string ACE extracted (or be left out)')
    label = str(row.get("index", row.get("id", f"row {line}")))
    return FinerRow(line, label, response, target, is_correct, final)


def _braced(text: str, open_at: int) -> str | None:
    """The text inside the brace that opens at ``text[open_at]`` (nested braces balanced)."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    return None


def ace_extract(response: str) -> str:
    """The answer ACE's ``extract_answer`` finds, following its documented order of rules.

    1. the whole reply parsed as a JSON object: its ``final_answer`` (``"No final answer found"``
       when the object has none);
    2. the last ``Finish[...]``;
    3. the last ``"final_answer": "..."`` pair, then ``'final_answer': '...'``, then an unquoted value;
    4. "The final answer is \\boxed{...}", then the rest of a "The final answer is ..." sentence;
    otherwise ``"No final answer found"``.
    """
    try:
        parsed = json.loads(response)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return str(parsed.get("final_answer", NO_ANSWER))
    for pattern in (_FINISH, _PAIR_DOUBLE, _PAIR_SINGLE):
        found = pattern.findall(response)
        if found:
            return found[-1]
    found = _PAIR_BARE.findall(response)
    if found:
        return re.sub(r"[,}]*$", "", found[-1].strip())
    start = _BOXED_START.search(response)
    if start:
        inner = _braced(response, start.end() - 1)
        if inner:
            return inner
    found = _PHRASE.findall(response)
    if found:
        answer = _BOXED_ONLY.sub(r"\1", found[-1].strip()).replace("$", "").strip()
        if answer:
            return answer
    return NO_ANSWER


def ace_is_correct(answer: str, target: str) -> bool:
    """ACE's sample-level verdict on an extracted answer (positional, case-insensitive)."""
    correct, _, _ = compare(answer, target)
    return bool(correct) and all(correct)


def check_row(row: FinerRow) -> Check:
    ours = score(row.response, row.target)
    agree = ours.per_task == row.is_correct
    ace_answer = row.final_answer if row.final_answer is not None else ace_extract(row.response)
    ours_answer = ours.answer if ours.answer is not None else NO_ANSWER
    same_extraction = [p.strip().lower() for p in ours_answer.split(",")] == [
        p.strip().lower() for p in ace_answer.split(",")
    ]
    reason = note = None
    if not agree and not same_extraction and ace_is_correct(ace_answer, row.target) == row.is_correct:
        reason = (f"known difference: answer extraction. resd read {short(ours_answer)} "
                  f"({ours.extraction.method}); ACE's extractor reads {short(ace_answer)}. resd also reads "
                  "<answer> tags, skips thinking and falls back to the last line (docs/finer.md)")
    elif agree and not same_extraction:
        note = (f"extractions differ (resd {short(ours_answer)}, ACE {short(ace_answer)}) "
                "but the verdict is the same")
    return Check(
        line=row.line, key=f"{row.label}", group=f"extraction: {ours.extraction.method}", agree=agree,
        ours={"is_correct": ours.per_task, "answer": ours.answer, "entity_accuracy": ours.per_test_case},
        reference={"is_correct": row.is_correct, "final_answer": ace_answer},
        input={"response": row.response, "target": row.target}, reason=reason, note=note,
    )


def check_rows(rows: list[FinerRow], report: FidelityReport) -> None:
    """Score every row and compare with ACE's verdict."""
    for row in rows:
        report.checks.append(check_row(row))

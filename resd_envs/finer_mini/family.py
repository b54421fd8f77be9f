"""The FinerMini task family: one FiNER-139 entity question, four candidate tags.

A small-model variant of Finer (``resd/Finer-v0``), registered as ``resd/FinerMini-v0`` so it is
never confused with the benchmark. Differences from Finer, all chosen so a 135M model on CPU can
learn within minutes (see ``docs/finer_mini.md``):

* one question per task instead of four, and ambiguous questions (entity token repeated in its
  sentence) dropped;
* 4 candidate tags per question (the gold tag and 3 seeded random distractors) instead of all 139;
* the sentence cut to at most 240 characters around the entity;
* our own short prompt asking for one tag inside ``<answer></answer>``;
* lenient answer reading: the candidate named in the answer (see :func:`predicted_tag`).

The data ships in ``resd_envs/finer_mini/data/`` (CC-BY-SA-4.0, derived from FiNER-139 via ACE's
files; built by :mod:`resd_envs.finer_mini.build`). Splits: ``train`` (1,671 tasks from ACE's test
subset) and ``test`` (1,920 tasks from ACE's val file); they share no sentence.

Task ids: ``finer_mini-<split>-<row, 4 digits>-<first 8 hex of sha256 of the row's JSON>``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from resd_envs.core.family import Task, TaskFamily, sha256_of_rows
from resd_envs.core.results import PRIVILEGED, Evaluation, TestResult, cap_text, check_detail
from resd_envs.errors import ConfigError, DataNotFoundError
from resd_envs.finer_mini.build import SPLIT_FILES
from resd_envs.finer_mini.kinds import kind_rule

#: Folder of the shipped task files.
DATA_DIR = Path(__file__).resolve().parent / "data"
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_ROW_KEYS = ("origin", "entity", "sentence", "candidates", "gold")
#: Accepted values of ``gold_feedback`` (see :class:`FinerMiniFamily`).
GOLD_FEEDBACK = ("tag", "reply")
#: Accepted values of ``wrong_feedback`` (see :class:`FinerMiniFamily`).
WRONG_FEEDBACK = ("plain", "kind")


def build_prompt(entity: str, sentence: str, candidates: Sequence[str]) -> str:
    """The prompt of one task (our wording; the candidates are numbered in their stored order)."""
    options = "\n".join(f"- {tag}" for tag in candidates)
    return (
        f'Which US GAAP XBRL tag fits the value "{entity}" in this sentence from an SEC filing?\n'
        f'Sentence: "{sentence}"\n'
        f"Candidate tags:\n{options}\n"
        "Reply with the one correct tag, copied exactly, inside <answer></answer>."
    )


def predicted_tag(response: str, candidates: Sequence[str]) -> tuple[str | None, str]:
    """The candidate the response answers with, and how it was read.

    The text searched is the last ``<answer>`` block (an unclosed one runs to the end), else the
    whole response. The prediction is the one candidate named there as a whole word (case-insensitive);
    when several candidates are named, none is taken (a list of candidates is not an answer).

    Returns:
        (tag or None, reason): reason is ``"answer_tag"`` or ``"text"`` when a tag was read, else
        ``"no_candidate"`` or ``"several_candidates"``.
    """
    text = response if isinstance(response, str) else str(response)
    blocks = _ANSWER_RE.findall(text)
    where, searched = ("answer_tag", blocks[-1]) if blocks else ("text", text)
    named = [tag for tag in candidates if re.search(rf"(?<![A-Za-z0-9]){re.escape(tag)}(?![A-Za-z0-9])",
                                                     searched, re.IGNORECASE)]
    if len(named) == 1:
        return named[0], where
    return None, "several_candidates" if named else "no_candidate"


class FinerMiniFamily(TaskFamily):
    """FinerMini: pick the XBRL tag of one entity among 4 candidates (one test case per task).

    Args:
        data_dir: folder holding ``finer_mini_train.jsonl`` / ``finer_mini_test.jsonl`` (default: the
            shipped data folder).
        gold_feedback: how the privileged feedback of a failure names the gold tag: ``"tag"``
            (default, as since v0: ``The correct tag is TAG.``) or ``"reply"`` (``The correct reply is
            <answer>TAG</answer>.``, the expected reply itself, which a self-teacher can continue: a
            135M teacher puts about twice the probability on the gold's first token; see
            docs/finer_mini.md). Scores do not depend on it.
        wrong_feedback: what the feedback of a wrong tag says: ``"plain"`` (default, as since v0:
            ``Wrong: X is not the right tag for "VALUE".``) or ``"kind"``, which adds, when X measures
            another kind of value than the gold tag, the general rule it broke (``A percentage or rate
            needs a rate or percentage tag, not a money-amount tag.``; :mod:`resd_envs.finer_mini.kinds`).
            The rule is in the policy feedback too: it hints at the kind of the gold tag, never names
            it. Scores do not depend on it.
    """

    env_id: ClassVar[str] = "resd/FinerMini-v0"
    version: ClassVar[str] = "v0"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    runs_code: ClassVar[bool] = False

    def __init__(
        self, data_dir: str | Path | None = None, gold_feedback: str = "tag", wrong_feedback: str = "plain"
    ) -> None:
        super().__init__()
        if gold_feedback not in GOLD_FEEDBACK:
            raise ConfigError(
                f"{self.env_id}: gold_feedback={gold_feedback!r} is not one of {', '.join(map(repr, GOLD_FEEDBACK))}; "
                "'tag' names the gold in a sentence, 'reply' writes it as the expected reply"
            )
        if wrong_feedback not in WRONG_FEEDBACK:
            raise ConfigError(
                f"{self.env_id}: wrong_feedback={wrong_feedback!r} is not one of "
                f"{', '.join(map(repr, WRONG_FEEDBACK))}; 'plain' says only that the tag is wrong, 'kind' adds "
                "the rule on the kind of value it broke"
            )
        self.gold_feedback = gold_feedback
        self.wrong_feedback = wrong_feedback
        self.data_dir = DATA_DIR if data_dir is None else Path(data_dir).expanduser()
        if not self.data_dir.is_dir():
            raise ConfigError(
                f"{self.env_id}: data_dir={str(self.data_dir)!r} is not a folder; leave it unset to use the "
                "shipped data, or give a folder written by `python -m resd_envs.finer_mini.build`"
            )

    def load_split(self, split: str) -> Sequence[Task]:
        """Rows: ``task_id``, ``prompt``, ``entity``, ``sentence``, ``candidates``, ``gold``, ``origin``."""
        path = self.data_dir / SPLIT_FILES[split]
        if not path.is_file():
            raise DataNotFoundError(
                f"{self.env_id} split {split!r}: {path} is missing; reinstall resd or rebuild it with "
                "`python -m resd_envs.finer_mini.build --ace-dir tests/data/finer --out-dir DIR`"
            )
        stat = path.stat()
        return [dict(row) for row in _rows_of_file(str(path), split, stat.st_size, stat.st_mtime_ns)]

    def task_set_sha256(self, split: str) -> str:
        return sha256_of_rows(self.tasks(split))

    def evaluate(
        self, task: Task, response: str, *, detail: str = "full", max_chars: int = 4000
    ) -> Evaluation:
        """Score one response: one test case ``q1``, passed when the read tag is the gold tag.

        ``error_type`` is ``"format_error"`` when no single candidate could be read. ``extra``:
        ``predicted``, ``gold``, ``read_from``.
        """
        check_detail(detail)
        gold = str(task["gold"])
        predicted, how = predicted_tag(response, task["candidates"])
        correct = predicted == gold
        if predicted is None:
            policy = (
                "No answer read: name exactly one of the candidate tags, copied exactly, inside "
                f"<answer></answer> ({'several candidates were named' if how == 'several_candidates' else 'none of the candidates was named'})."
            )
        elif correct:
            policy = f"Correct: {predicted} is the right tag."
        else:
            policy = f"Wrong: {predicted} is not the right tag for \"{task['entity']}\"."
            if self.wrong_feedback == "kind" and (rule := kind_rule(gold, predicted)):
                policy = f"{policy} {rule}"
        privileged = policy if correct else f"{policy} {self.gold_sentence(task)}"
        message = "correct" if correct else ("no answer read" if predicted is None else f"answered {predicted}")
        return Evaluation(
            test_results=(TestResult("q1", correct, message),),
            error_type="format_error" if predicted is None else None,
            feedback=cap_text(privileged if detail == PRIVILEGED else policy, max_chars),
            extra={"predicted": predicted, "gold": gold, "read_from": how},
            privileged_feedback=cap_text(privileged, max_chars),
        )

    def gold_sentence(self, task: Task) -> str:
        """The sentence the privileged feedback of a failure ends with (``gold_feedback``'s phrasing)."""
        if self.gold_feedback == "reply":
            return f"The correct reply is {self.reference_response(task)}."
        return f"The correct tag is {task['gold']}."

    def reference_response(self, task: Task) -> str:
        return f"<answer>{task['gold']}</answer>"

    def describe(self) -> dict[str, Any]:
        return {"data": str(self.data_dir), "variant_of": "resd/Finer-v0", "candidates_per_task": 4,
                "gold_feedback": self.gold_feedback, "wrong_feedback": self.wrong_feedback}


@functools.lru_cache(maxsize=8)
def _rows_of_file(path: str, split: str, size: int, mtime_ns: int) -> tuple[dict[str, Any], ...]:
    """Validated task rows of one shipped file (cached; errors name the line)."""
    del size, mtime_ns  # cache key only
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict) or any(key not in obj for key in _ROW_KEYS):
                raise ConfigError(f"{path}:{number}: a FinerMini row needs the keys {', '.join(_ROW_KEYS)}")
            if obj["gold"] not in obj["candidates"]:
                raise ConfigError(f"{path}:{number}: the gold tag {obj['gold']!r} is not among the candidates")
            digest = hashlib.sha256(line.strip().encode("utf-8")).hexdigest()[:8]
            rows.append({
                "task_id": f"finer_mini-{split}-{len(rows):04d}-{digest}",
                "prompt": build_prompt(obj["entity"], obj["sentence"], obj["candidates"]),
                "entity": obj["entity"],
                "sentence": obj["sentence"],
                "candidates": list(obj["candidates"]),
                "gold": obj["gold"],
                "origin": obj["origin"],
            })
    if not rows:
        raise ConfigError(f"{path}: the file holds no tasks")
    return tuple(rows)

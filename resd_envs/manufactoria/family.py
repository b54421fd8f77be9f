"""``ManufactoriaHasFamily``: the task set, the scorer and the reference responses of Manufactoria-Has.

Task rows (``load_tasks("resd/Manufactoria-Has-v0", split)``)::

    task_id   "has-substring-RYRY", "has-ordered-GBYG", "has-count-B1-Y3-G1"
    index     position in the split (DELTA's order)
    family    "contains_count" | "contains_ordered" | "contains_substring"
    params    {"requirements": [["B", 1], ...]} or {"sequence": "RYRY"} (as in DELTA's split file)
    name, criteria, prompt
    tests     [{"id": "t00", "tape": "RB", "accept": false}, ...]  (labelled by the predicate)

Scoring equals DELTA's: the last fenced block (or the whole response) is parsed; a parse error scores 0;
otherwise every test is run on a fresh robot and passes when accept/reject matches the label;
``binary`` reward = all tests pass, ``pass_rate`` = fraction passed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from resd_envs.core.family import Task, TaskFamily, sha256_of_rows
from resd_envs.core.results import FEEDBACK_DETAILS, Evaluation, TestResult, cap_text
from resd_envs.errors import ChecksumMismatchError, ConfigError
from resd_envs.manufactoria import feedback as fb
from resd_envs.manufactoria.extract import extract_program, fence_count
from resd_envs.manufactoria.machine import RunResult, run
from resd_envs.manufactoria.parser import ManufactoriaSyntaxError, parse
from resd_envs.manufactoria.problems import (
    FAMILIES,
    Problem,
    build_tests,
    criteria,
    label_reason,
    split_problems,
    title,
)
from resd_envs.manufactoria.prompt import build_prompt
from resd_envs.manufactoria.solutions import reference_response

#: sha256 of each split's rows (TaskFamily.task_set_sha256). If the generated set ever differs, the
#: tests fail: either restore the generator or bump ``version`` and the env id, then update these.
EXPECTED_SHA256: dict[str, str] = {
    "train": "b5ac2580b11e48c769c0855a439111b618810bd9f3725ab55b589b6b08705061",
    "test": "744ad354a8aee9a2473356a68abc06a00f24c1175217b4384c890fe7a83e7c3a",
}
SPLIT_SIZES: dict[str, int] = {"train": 742, "test": 132}


@cache
def _split_rows(split: str) -> tuple[dict[str, Any], ...]:
    rows = []
    for index, problem in enumerate(split_problems()[split]):
        tests = build_tests(problem)
        rows.append(
            {
                "task_id": problem.task_id,
                "index": index,
                "family": problem.family,
                "params": problem.params,
                "name": title(problem),
                "criteria": criteria(problem),
                "prompt": build_prompt(criteria(problem)),
                "tests": [{"id": f"t{i:02d}", "tape": t["tape"], "accept": t["accept"]} for i, t in enumerate(tests)],
            }
        )
    return tuple(rows)


def _problem(task: Task) -> Problem:
    return Problem(str(task["family"]), dict(task["params"]))


class ManufactoriaHasFamily(TaskFamily):
    """The 874 DELTA 'has' problems (742 train / 132 test) with DELTA-exact scoring and teaching feedback."""

    env_id = "resd/Manufactoria-Has-v0"
    version = "0"
    splits = ("train", "test")
    runs_code = False

    def load_split(self, split: str) -> tuple[dict[str, Any], ...]:
        self.check_split(split)
        return _split_rows(split)

    def verify_checksums(self) -> dict[str, str]:
        """Recompute each split's sha256 and compare with :data:`EXPECTED_SHA256`.

        Raises:
            ChecksumMismatchError: the generated task set drifted from the shipped checksum.
        """
        found = {split: sha256_of_rows(self.tasks(split)) for split in self.splits}
        for split, digest in found.items():
            if digest != EXPECTED_SHA256[split]:
                raise ChecksumMismatchError(
                    f"{self.env_id} split {split!r} hashes to {digest}, expected {EXPECTED_SHA256[split]}; "
                    "the task generator changed: restore it, or bump the env version and the checksum"
                )
        return found

    def evaluate(self, task: Task, response: str, *, detail: str = "full", max_chars: int = 4000) -> Evaluation:
        if detail not in FEEDBACK_DETAILS:
            raise ConfigError(f"detail={detail!r}: use one of {', '.join(FEEDBACK_DETAILS)}")
        if not isinstance(response, str):
            response = str(response)
        tests = task["tests"]
        program = extract_program(response)
        blocks = fence_count(response)
        note = ""
        if blocks == 0:
            note = "Note: no ```manufactoria block was found, so the whole response was read as the program."
        elif blocks > 1:
            note = f"Note: graded the last of {blocks} fenced blocks."
        try:
            factory = parse(program)
        except ManufactoriaSyntaxError as error:
            return self._parse_failure(error, blocks, len(tests), detail, max_chars, note)
        results, failures = [], []
        for test in tests:
            outcome = run(factory, test["tape"])
            ok = outcome.accepted == bool(test["accept"])
            results.append(TestResult(str(test["id"]), ok, _message(test["tape"], bool(test["accept"]), outcome)))
            if not ok:
                failures.append(fb.Failure(str(test["id"]), test["tape"], bool(test["accept"]), outcome))
        family, params = str(task.get("family", "")), task.get("params", {})
        reason = (lambda tape: label_reason(family, params, tape)) if family in FAMILIES else None
        text = fb.failures_feedback(factory, failures, len(tests), detail, note, reason)
        return Evaluation(
            test_results=tuple(results),
            error_type="wrong_answer" if failures else None,
            feedback=_cap(text, max_chars),
            num_tests=len(tests),
            extra={"num_nodes": len(factory.nodes)},
        )

    def _parse_failure(
        self, error: ManufactoriaSyntaxError, blocks: int, num_tests: int, detail: str, max_chars: int, note: str
    ) -> Evaluation:
        no_code = error.category == "empty_program" or (
            blocks == 0 and error.category == "invalid_node_declaration" and error.line == 1
        )
        if no_code:
            text = (
                "No program found: put your factory in a ```manufactoria fenced block "
                "(START start: ... END end). The score is 0."
            )
            if detail != "minimal" and error.category != "empty_program":
                text += f"\nThe response was read as a program and its first line failed: {error.text}"
        else:
            text = fb.parse_error_feedback(error, detail, note)
        return Evaluation(
            test_results=(),
            error_type="no_code" if no_code else "parse_error",
            feedback=_cap(text, max_chars),
            num_tests=num_tests,
            extra={"parse_error": {"category": error.category, "line": error.line, "message": error.message}},
        )

    def reference_response(self, task: Task) -> str:
        return reference_response(_problem(task))

    def describe(self) -> dict[str, Any]:
        return {"problems": sum(SPLIT_SIZES.values()), "splits": dict(SPLIT_SIZES), "reward": "DELTA-exact"}


def _message(tape: str, expected: bool, outcome: RunResult) -> str:
    got = outcome.result + (f" ({outcome.rejection})" if outcome.rejection else "")
    status = "ok" if outcome.accepted == expected else "FAIL"
    return f"{status}: tape {fb.show_tape(tape, 24)} expected {fb.verdict(expected)}, got {got}"


def _cap(text: str, max_chars: int) -> str:
    """``cap_text`` that never exceeds ``max_chars`` (its marker can gain a digit after it sizes the cut)."""
    budget = max_chars
    out = cap_text(text, budget)
    while max_chars > 0 and len(out) > max_chars and budget > 1:
        budget -= 1
        out = cap_text(text, budget)
    return out

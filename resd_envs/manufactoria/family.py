"""``ManufactoriaHasFamily``: the task set, the scorer and the reference responses of Manufactoria-Has.

Task rows (``load_tasks("resd/Manufactoria-Has-v0", split)``)::

    task_id   "has-substring-RYRY", "has-ordered-GBYG", "has-count-B1-Y3-G1"
    index     position in the split (DELTA's order)
    family    "contains_count" | "contains_ordered" | "contains_substring"
    params    {"requirements": [["B", 1], ...]} or {"sequence": "RYRY"} (as in DELTA's split file);
              rows from ``load_tasks`` carry it as JSON text (one column type for ``datasets``)
    name, criteria, prompt
    tests     [{"id": "t00", "tape": "RB", "accept": false}, ...]  (labelled by the predicate)

Scoring equals DELTA's: the last fenced block (or the whole response) is parsed; a parse error scores 0;
otherwise every test is run on a fresh robot and passes when accept/reject matches the label;
``binary`` reward = all tests pass, ``pass_rate`` = fraction passed.

Hidden robustness tapes (:mod:`resd_envs.manufactoria.hidden`, >= 120 per problem, never in rows,
prompts or feedback) are run on every evaluation and reported in ``extra`` (``hidden_num_tests``,
``hidden_passed``, ``hidden_pass_rate``, ``hidden_all_passed``). ``reward_tests="reference"``
(default, DELTA-faithful) scores the task's tests; ``"hidden"`` scores the hidden tapes; ``"both"``
scores the union.

Feedback: ``full``/``summary``/``minimal`` never name a failed test tape (see
:mod:`resd_envs.manufactoria.feedback`); ``privileged`` (and ``Evaluation.privileged_feedback``)
lists them with their expected verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from resd_envs.core.family import Task, TaskFamily, sha256_of_rows
from resd_envs.core.results import PRIVILEGED, Evaluation, TestResult, cap_text, check_detail
from resd_envs.errors import ChecksumMismatchError, ConfigError
from resd_envs.manufactoria import feedback as fb
from resd_envs.manufactoria.extract import extract_program, fence_count
from resd_envs.manufactoria.hidden import example_tapes, hidden_tests
from resd_envs.manufactoria.machine import RunResult, run
from resd_envs.manufactoria.parser import Factory, ManufactoriaSyntaxError, parse
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
#: Which tapes the reward is computed on (see the module docstring).
REWARD_TESTS: tuple[str, ...] = ("reference", "hidden", "both")


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
    params = task["params"]
    return Problem(str(task["family"]), json.loads(params) if isinstance(params, str) else dict(params))


def _hidden_for(task: Task) -> tuple[tuple[str, bool], ...]:
    """The task's hidden tapes (none for a row whose family is not a 'has' family)."""
    if task.get("family") not in FAMILIES:
        return ()
    return hidden_tests(_problem(task), frozenset(str(t["tape"]) for t in task["tests"]))


class ManufactoriaHasFamily(TaskFamily):
    """The 874 DELTA 'has' problems (742 train / 132 test) with DELTA-exact scoring and teaching feedback.

    Args:
        reward_tests: ``"reference"`` (default: DELTA's tests, DELTA-faithful reward), ``"hidden"``
            (the hidden robustness tapes) or ``"both"``.
    """

    env_id = "resd/Manufactoria-Has-v0"
    version = "v0"
    splits = ("train", "test")
    runs_code = False

    def __init__(self, reward_tests: str = "reference") -> None:
        super().__init__()
        if reward_tests not in REWARD_TESTS:
            raise ConfigError(f"reward_tests={reward_tests!r}: use one of {', '.join(REWARD_TESTS)}")
        self.reward_tests = reward_tests

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
        check_detail(detail)
        if not isinstance(response, str):
            response = str(response)
        tests = [(str(t["id"]), str(t["tape"]), bool(t["accept"])) for t in task["tests"]]
        hidden = _hidden_for(task)
        scored = self._scored_tests(tests, hidden)
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
            return self._parse_failure(error, blocks, len(scored), len(hidden), detail, max_chars, note)
        results, failures = [], []  # failures: every failed scored case (hidden ones never shown by tape)
        for test_id, tape, expected in scored:
            outcome = run(factory, tape)
            ok = outcome.accepted == expected
            is_hidden = test_id.startswith("h")
            message = _hidden_message(expected, outcome) if is_hidden else _message(tape, expected, outcome)
            results.append(TestResult(test_id, ok, message))
            if not ok:
                failures.append(fb.Failure(test_id, tape, expected, outcome))
        shown = [f for f in failures if not f.test_id.startswith("h")]
        hidden_passed = (
            sum(r.passed for r in results if r.id.startswith("h"))
            if self.reward_tests != "reference"
            else sum(run(factory, tape).accepted == expected for tape, expected in hidden)
        )
        failed = len(failures)
        problem = _problem(task) if task.get("family") in FAMILIES else None
        reason = (lambda tape: label_reason(problem.family, problem.params, tape)) if problem else None
        scored_count = len(results)
        privileged = fb.failures_feedback(factory, shown, len(tests), "full", note, reason)
        if self.reward_tests != "reference":
            privileged += f"\n{scored_count - failed}/{scored_count} scored tapes passed (hidden tapes are not shown)."
        if detail == PRIVILEGED:
            text = privileged
        else:
            example = _counterexample(factory, problem, tests) if failed and detail == "full" else None
            text = fb.policy_feedback(factory, failures, scored_count, detail, note, example)
        extra: dict[str, Any] = {"num_nodes": factory.node_count, **_hidden_extra(hidden_passed, len(hidden))}
        return Evaluation(
            test_results=tuple(results),
            error_type="wrong_answer" if failed else None,
            feedback=_cap(text, max_chars),
            num_tests=scored_count,
            extra=extra,
            privileged_feedback=_cap(privileged, max_chars),
        )

    def _scored_tests(
        self, tests: list[tuple[str, str, bool]], hidden: Sequence[tuple[str, bool]]
    ) -> list[tuple[str, str, bool]]:
        """The (id, tape, accept) cases the reward counts; hidden ids are ``h000``, ``h001``, ..."""
        hidden_cases = [(f"h{i:03d}", tape, accept) for i, (tape, accept) in enumerate(hidden)]
        if self.reward_tests == "hidden":
            return hidden_cases
        if self.reward_tests == "both":
            return tests + hidden_cases
        return tests

    def _parse_failure(
        self,
        error: ManufactoriaSyntaxError,
        blocks: int,
        num_tests: int,
        num_hidden: int,
        detail: str,
        max_chars: int,
        note: str,
    ) -> Evaluation:
        no_code = error.category == "empty_program" or (
            blocks == 0 and error.category == "invalid_node_declaration" and error.line == 1
        )
        if no_code:
            text = (
                "No program found: put your factory in a ```manufactoria fenced block "
                "(START start: ... END end). The score is 0."
            )
            first_line = f"\nThe response was read as a program and its first line failed: {error.text}"
            privileged = text + (first_line if error.category != "empty_program" else "")
            if detail != "minimal":
                text = privileged
        else:
            text = fb.parse_error_feedback(error, detail, note)
            privileged = fb.parse_error_feedback(error, "full", note)
        extra = {
            "parse_error": {"category": error.category, "line": error.line, "message": error.message},
            **_hidden_extra(0, num_hidden),
        }
        return Evaluation(
            test_results=(),
            error_type="no_code" if no_code else "parse_error",
            feedback=_cap(text, max_chars),
            num_tests=num_tests,
            extra=extra,
            privileged_feedback=_cap(privileged, max_chars),
        )

    def reference_response(self, task: Task) -> str:
        return reference_response(_problem(task))

    def export_row(self, task: Task) -> dict[str, Any]:
        """The row with ``params`` as JSON text (``{"sequence": ...}`` or ``{"requirements": ...}``)."""
        out = dict(task)
        if not isinstance(out.get("params"), str):
            out["params"] = json.dumps(out.get("params"), sort_keys=True)
        return out

    def describe(self) -> dict[str, Any]:
        reward = "DELTA-exact" if self.reward_tests == "reference" else f"{self.reward_tests} tapes"
        return {"problems": sum(SPLIT_SIZES.values()), "splits": dict(SPLIT_SIZES), "reward": reward}


def _hidden_extra(passed: int, total: int) -> dict[str, Any]:
    return {
        "hidden_num_tests": total,
        "hidden_passed": passed,
        "hidden_pass_rate": passed / total if total else 0.0,
        "hidden_all_passed": bool(total) and passed == total,
    }


def _hidden_message(expected: bool, outcome: RunResult) -> str:
    """A hidden tape's result line: pass/fail only (no tape, no verdict)."""
    return "ok: hidden tape" if outcome.accepted == expected else "FAIL: hidden tape"


def _counterexample(
    factory: Factory, problem: Problem | None, tests: Sequence[tuple[str, str, bool]]
) -> fb.Counterexample | None:
    """The shortest tape outside the test and hidden sets on which ``factory`` disagrees with the rule."""
    if problem is None:
        return None
    for tape, expected in example_tapes(problem, frozenset(tape for _, tape, _ in tests)):
        if run(factory, tape).accepted != expected:
            return fb.Counterexample(tape, expected, label_reason(problem.family, problem.params, tape))
    return None


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

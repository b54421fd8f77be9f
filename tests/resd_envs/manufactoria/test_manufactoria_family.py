"""Scoring (DELTA-exact rewards), error types, and feedback that says what failed and why."""

from __future__ import annotations

import pickle

import pytest

import resd_envs
from resd_envs.errors import ResdEnvError
from resd_envs.manufactoria.problems import Problem
from resd_envs.manufactoria.solutions import solution_program

ENV_ID = "resd/Manufactoria-Has-v0"


@pytest.fixture(scope="module")
def fam():
    return resd_envs.family(ENV_ID)


@pytest.fixture(scope="module")
def task(fam):
    return fam.tasks("test")[0]  # has-substring-RYRY


def fenced(program: str) -> str:
    return f"Answer:\n```manufactoria\n{program}\n```"


def reference_program(task) -> str:
    return solution_program(Problem(task["family"], task["params"]))


def test_reward_modes_match_reference_scoring(fam, task) -> None:
    program = reference_program(task).replace("[Y] end", "[Y] END")  # accepting branch broken
    ev = fam.evaluate(task, fenced(program))
    accepting = sum(t["accept"] for t in task["tests"])
    assert ev.error_type == "wrong_answer" and not ev.passed
    assert ev.num_passed == len(task["tests"]) - accepting
    assert ev.reward("binary") == 0.0
    assert ev.reward("pass_rate") == pytest.approx(ev.num_passed / len(task["tests"]))
    assert len(ev.test_results) == len(task["tests"])


def test_parse_error_scores_zero_with_line_and_fix(fam, task) -> None:
    program = reference_program(task).replace("    NEXT s0", "NEXT s0")
    ev = fam.evaluate(task, fenced(program))
    assert ev.error_type == "parse_error" and ev.score == 0.0 and ev.reward("pass_rate") == 0.0
    assert ev.test_results == () and ev.num_tests == len(task["tests"])
    assert "line 1" in ev.feedback and "START node must have exactly one NEXT route" in ev.feedback
    assert "How to fix" in ev.feedback
    assert ev.extra["parse_error"]["category"] == "start_route_count"


@pytest.mark.parametrize("response", ["", "   ", "```manufactoria\n# nothing yet\n```", "I do not know."])
def test_no_program_is_no_code(fam, task, response: str) -> None:
    ev = fam.evaluate(task, response)
    assert ev.error_type == "no_code" and ev.score == 0.0 and "```manufactoria" in ev.feedback


def test_fence_tag_hint(fam, task) -> None:
    ev = fam.evaluate(task, f"```python\n{reference_program(task)}\n```")
    assert ev.error_type == "parse_error" and "```manufactoria" in ev.feedback and "lowercase" in ev.feedback


def test_feedback_explains_uppercase_end(fam, task) -> None:
    ev = fam.evaluate(task, fenced(reference_program(task).replace("[Y] end", "[Y] END")))
    assert "tape 'RYRY': expected accept ('RYRY' starts at symbol 1), got reject" in ev.privileged_feedback
    assert "`END` (uppercase)" in ev.privileged_feedback and "`end`" in ev.privileged_feedback
    assert "path: start -> s0" in ev.privileged_feedback


def test_feedback_explains_missing_branch(fam, task) -> None:
    program = reference_program(task).replace("    [Y] s2\n", "")  # s1_yg loses its [Y] branch
    ev = fam.evaluate(task, fenced(program))
    assert "node s1_yg pulled Y and has no [Y] branch, so it went to NONE" in ev.privileged_feedback


def test_feedback_explains_foreign_symbol_without_empty_branch(fam, task) -> None:
    program = reference_program(task).replace("    [EMPTY] s0_yg\n", "")
    ev = fam.evaluate(task, fenced(program))
    assert "not one a PULLER_RB reads (R/B), so it stayed on the tape; with no [EMPTY] branch" in ev.privileged_feedback


def test_feedback_explains_wrong_accepts_with_the_rule(fam) -> None:
    task = fam.task_by_id("has-count-R1-Y3")
    program = "START start:\n    NEXT a\nPULLER_RB a:\n    [R] end\n    [B] a\nEND end"
    ev = fam.evaluate(task, fenced(program))
    assert "tape 'R': expected reject (it has 1 R (needs 1) and 0 Y (needs 3)), got accept" in ev.privileged_feedback
    assert "node a pulled R and its [R] branch (line 4) goes to end, so the robot was accepted" in ev.privileged_feedback


def test_feedback_names_the_loop_at_the_limit(fam, task) -> None:
    program = "START start:\n    NEXT a\nPAINTER_RED a:\n    NEXT b\nPAINTER_BLUE b:\n    NEXT a\nEND end"
    ev = fam.evaluate(task, fenced(program))
    assert "still running after 1000 steps, caught in the loop" in ev.privileged_feedback
    assert "a -> b -> a" in ev.privileged_feedback or "b -> a -> b" in ev.privileged_feedback


def test_detail_levels_and_cap(fam, task) -> None:
    response = fenced(reference_program(task).replace("[Y] end", "[Y] END"))
    full = fam.evaluate(task, response, detail="full", max_chars=0).feedback
    summary = fam.evaluate(task, response, detail="summary", max_chars=0).feedback
    minimal = fam.evaluate(task, response, detail="minimal", max_chars=0).feedback
    privileged = fam.evaluate(task, response, detail="privileged", max_chars=0)
    assert "why:" in full and "why:" not in summary and "rule accepts were rejected" in summary
    assert "\n" not in minimal and "tests passed" in minimal
    assert len(minimal) < len(summary) < len(full)
    assert "tape 'RYRY': expected accept" in privileged.feedback
    assert privileged.feedback == privileged.privileged_feedback
    capped = fam.evaluate(task, response, detail="full", max_chars=300)
    assert len(capped.feedback) <= 300 and "truncated" in capped.feedback
    assert len(capped.privileged_feedback) <= 300
    with pytest.raises(ResdEnvError, match="detail"):
        fam.evaluate(task, response, detail="verbose")


def test_notes_which_block_was_graded(fam, task) -> None:
    ref = reference_program(task)
    ev = fam.evaluate(task, f"```manufactoria\n{ref}\n```\nagain:\n```manufactoria\n{ref}\n```")
    assert ev.passed
    ev = fam.evaluate(task, fenced(ref.replace("[Y] end", "[Y] END")) + "\n" + fenced(ref.replace("[Y] end", "[Y] END")))
    assert "graded the last of 2 fenced blocks" in ev.feedback


def test_family_pickles_and_env_runs(fam, task) -> None:
    clone = pickle.loads(pickle.dumps(fam))
    assert clone.evaluate(task, fam.reference_response(task)).passed
    env = resd_envs.make(ENV_ID, split="test", reward_mode="pass_rate", feedback="summary")
    obs, info = env.reset(options={"task_id": task["task_id"]})
    assert obs == task["prompt"] and info["task_id"] == "has-substring-RYRY"
    _, reward, terminated, _, info = env.step(fam.reference_response(task))
    assert reward == 1.0 and terminated and info["num_tests"] == len(task["tests"])
    env.close()


def test_verify_batch(fam) -> None:
    rows = fam.tasks("train")[:20]
    results = resd_envs.verify(ENV_ID, [r["task_id"] for r in rows], [fam.reference_response(r) for r in rows], max_workers=1)
    assert all(r.passed for r in results)

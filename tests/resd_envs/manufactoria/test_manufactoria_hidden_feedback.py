"""Manufactoria cannot be gamed: policy feedback leaks no verdicts, memorising the tests shows up in
the hidden robustness set, and the hidden tapes stay out of rows, prompts and feedback."""

from __future__ import annotations

import json
import re

import pytest

import resd_envs
from resd_envs.errors import ConfigError
from resd_envs.manufactoria import hidden
from resd_envs.manufactoria.family import ManufactoriaHasFamily
from resd_envs.manufactoria.problems import Problem, all_problems, build_tests, predicate

ENV_ID = "resd/Manufactoria-Has-v0"
REJECT_ALL = "```manufactoria\nSTART start:\n    NEXT NONE\n\nEND end\n```"
_REVEALED = re.compile(r"tape '([RBYG]*)'(?: \(\d+ symbols\))?: expected (accept|reject)|'([RBYG]*)'->(accept|reject)")


def memoriser(accepted: set[str]) -> str:
    """A prefix tree of pullers that accepts exactly ``accepted`` (and rejects every other tape)."""
    prefixes = sorted({tape[:i] for tape in accepted for i in range(len(tape) + 1)} | {""}, key=lambda p: (len(p), p))
    name = {p: f"n{i}" for i, p in enumerate(prefixes)}

    def child(prefix: str, symbol: str) -> str:
        return name.get(prefix + symbol, "NONE")

    lines = ["START start:", f"    NEXT {name['']}", ""]
    for p in prefixes:
        lines += [f"PULLER_RB {name[p]}:", f"    [R] {child(p, 'R')}", f"    [B] {child(p, 'B')}",
                  f"    [EMPTY] {name[p]}_yg", "", f"PULLER_YG {name[p]}_yg:", f"    [Y] {child(p, 'Y')}",
                  f"    [G] {child(p, 'G')}", f"    [EMPTY] {'end' if p in accepted else 'NONE'}", ""]
    lines.append("END end")
    return "```manufactoria\n" + "\n".join(lines) + "\n```"


def copy_attack(feedback: str) -> str:
    """The second attempt of a lookup attacker: accept every tape the feedback says should be accepted."""
    accepted = set()
    for match in _REVEALED.finditer(feedback):
        tape, verdict = (match.group(1), match.group(2)) if match.group(2) else (match.group(3), match.group(4))
        if verdict == "accept":
            accepted.add(tape)
    return memoriser(accepted)


@pytest.fixture(scope="module")
def fam() -> ManufactoriaHasFamily:
    return resd_envs.family(ENV_ID)


def test_copying_policy_feedback_never_scores_but_privileged_does(fam) -> None:
    """132/132 test tasks: the lookup attack works on privileged text and fails on every policy level."""
    env = resd_envs.make(ENV_ID, split="test", max_attempts=2, feedback="full", max_feedback_chars=0)
    privileged_wins = 0
    for task in fam.tasks("test"):
        env.reset(options={"task_id": task["task_id"]})
        obs, reward, done, _, info = env.step(REJECT_ALL)
        assert reward == 0.0 and not done
        _, reward, _, _, _ = env.step(copy_attack(obs))
        assert reward == 0.0, task["task_id"]
        for level in ("summary", "minimal"):
            text = fam.evaluate(task, REJECT_ALL, detail=level, max_chars=0).feedback
            assert fam.evaluate(task, copy_attack(text)).reward("binary") == 0.0
        privileged_wins += fam.evaluate(task, copy_attack(info["privileged_feedback"])).passed
    # the attack is real: the privileged text names enough tapes to pass most tasks (long tapes are elided)
    assert privileged_wins > len(fam.tasks("test")) // 2


def test_memoriser_scores_full_delta_reward_but_low_hidden_rate(fam) -> None:
    rates = []
    for task in fam.tasks("test"):
        program = memoriser({t["tape"] for t in task["tests"] if t["accept"]})
        ev = fam.evaluate(task, program)
        assert ev.reward("binary") == 1.0  # DELTA-faithful reward unchanged: the memoriser passes
        assert ev.extra["hidden_num_tests"] >= 100 and not ev.extra["hidden_all_passed"]
        rates.append(ev.extra["hidden_pass_rate"])
        assert fam.evaluate(task, fam.reference_response(task)).extra["hidden_pass_rate"] == 1.0
    assert max(rates) < 0.8 and sum(rates) / len(rates) < 0.6


def test_reward_tests_option_scores_the_hidden_set() -> None:
    fam = ManufactoriaHasFamily(reward_tests="hidden")
    both = ManufactoriaHasFamily(reward_tests="both")
    task = fam.tasks("test")[0]
    program = memoriser({t["tape"] for t in task["tests"] if t["accept"]})
    ev = fam.evaluate(task, program)
    assert ev.reward("binary") == 0.0 and ev.num_tests == ev.extra["hidden_num_tests"] >= 100
    assert ev.reward("pass_rate") == pytest.approx(ev.extra["hidden_pass_rate"])
    assert all(r.id.startswith("h") and "'" not in r.message for r in ev.test_results)
    ev_both = both.evaluate(task, program)
    assert ev_both.num_tests == len(task["tests"]) + ev.num_tests
    assert fam.evaluate(task, fam.reference_response(task)).passed
    env = resd_envs.make(ENV_ID, split="test", reward_tests="hidden")
    env.reset(options={"task_id": task["task_id"]})
    assert env.step(program)[1] == 0.0
    with pytest.raises(ConfigError, match="reward_tests"):
        ManufactoriaHasFamily(reward_tests="all")


def test_hidden_tapes_meet_quotas_are_disjoint_and_seeded() -> None:
    for problem in all_problems():
        tests = frozenset(t["tape"] for t in build_tests(problem))
        cases, near = hidden.draw(hidden.hidden_rng(problem.task_id), problem, tests,
                                  predicate(problem.family, problem.params))
        accepted = sum(a for _, a in cases)
        assert len(cases) >= hidden.MIN_HIDDEN and min(accepted, len(cases) - accepted) >= hidden.MIN_EACH
        assert near >= hidden.MIN_NEAR_MISSES, problem.task_id
        assert not tests & {tape for tape, _ in cases}
        assert all(problem.accepts(tape) == label for tape, label in cases)
        assert cases == hidden.hidden_tests(problem, tests)


def test_hidden_tapes_never_in_rows_prompts_or_feedback(fam) -> None:
    task = fam.task_by_id("has-count-R1-Y3")
    problem = Problem(task["family"], task["params"])
    tapes = {tape for tape, _ in hidden.hidden_tests(problem, frozenset(t["tape"] for t in task["tests"]))}
    long_tapes = {t for t in tapes if len(t) >= 6}
    row = next(r for r in resd_envs.load_tasks(ENV_ID, "test") if r["task_id"] == task["task_id"])
    assert not tapes & {t["tape"] for t in row["tests"]}
    assert not any(f"'{t}'" in row["prompt"] for t in long_tapes)
    wrong = "```manufactoria\nSTART start:\n    NEXT a\nPULLER_RB a:\n    [R] end\n    [B] a\nEND end\n```"
    for level in ("full", "summary", "minimal", "privileged"):
        ev = fam.evaluate(task, wrong, detail=level, max_chars=0)
        quoted = set(re.findall(r"'([RBYG]+)'", ev.feedback + ev.privileged_feedback))
        assert not quoted & long_tapes
        messages = " ".join(r.message for r in ev.test_results)
        assert not set(re.findall(r"'([RBYG]+)'", messages)) & long_tapes


def test_policy_feedback_names_no_test_tape_and_shows_a_fresh_counterexample(fam) -> None:
    task = fam.task_by_id("has-count-R1-Y3")
    wrong = "```manufactoria\nSTART start:\n    NEXT a\nPULLER_RB a:\n    [R] end\n    [B] a\nEND end\n```"
    ev = fam.evaluate(task, wrong, detail="full", max_chars=0)
    tests = {t["tape"] for t in task["tests"]}
    quoted = set(re.findall(r"tape '([RBYG]*)'", ev.feedback))
    assert quoted and not quoted & tests
    assert "Counterexample (not one of the tests)" in ev.feedback and "why:" in ev.feedback
    assert "tape(s) the rule rejects reached end and were accepted" in ev.feedback
    assert "expected reject" in ev.privileged_feedback


def test_load_tasks_columns_have_one_type() -> None:
    for split in ("train", "test"):
        rows = resd_envs.load_tasks(ENV_ID, split)
        for column in rows[0]:
            kinds = {type(row[column]).__name__ for row in rows}
            assert len(kinds) == 1, (column, kinds)
        assert all(isinstance(json.loads(r["params"]), dict) for r in rows)
    fam = resd_envs.family(ENV_ID)
    row = resd_envs.load_tasks(ENV_ID, "test")[0]
    assert fam.evaluate(row, fam.reference_response(row)).passed  # exported rows still score

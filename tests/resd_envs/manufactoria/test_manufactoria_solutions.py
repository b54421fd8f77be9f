"""Built-in reference solutions: all 874 problems pass all their test cases."""

from __future__ import annotations

import resd_envs
from resd_envs import manufactoria as mf
from resd_envs.manufactoria.problems import Problem
from resd_envs.manufactoria.solutions import solution_program


def test_all_874_reference_solutions_pass_every_test() -> None:
    fam = resd_envs.family("resd/Manufactoria-Has-v0")
    checked = 0
    for split in fam.splits:
        for task in fam.tasks(split):
            response = fam.reference_response(task)
            assert "```manufactoria\n" in response
            evaluation = fam.evaluate(task, response)
            assert evaluation.passed and evaluation.error_type is None, (task["task_id"], evaluation.feedback)
            assert evaluation.reward("binary") == 1.0
            checked += 1
    assert checked == 874


def test_solutions_stay_correct_on_long_random_tapes() -> None:
    """Beyond the test tapes: exhaustive tapes up to length 6 for a sample of problems."""
    import itertools

    problems = [
        Problem("contains_count", {"requirements": [["R", 2], ["Y", 1], ["G", 3]]}),
        Problem("contains_ordered", {"sequence": "GYGY"}),
        Problem("contains_substring", {"sequence": "RRBR"}),
        Problem("contains_substring", {"sequence": "YGYG"}),
    ]
    for problem in problems:
        factory = mf.parse(solution_program(problem))
        for n in range(7):
            for tape in map("".join, itertools.product("RBYG", repeat=n)):
                assert mf.run(factory, tape).accepted == problem.accepts(tape), (problem, tape)

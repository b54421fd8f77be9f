"""The gold solver and its known-wrong variants (run in-process; the sandboxed run is marked slow)."""

from __future__ import annotations

import ast

import pytest

from resd_envs.bouncingsim.family import BouncingSimFamily
from resd_envs.bouncingsim.solver import solver_source


def _rate(fam: BouncingSimFamily, rows, variant: str) -> tuple[float, int]:
    from resd_envs.bouncingsim.solver import reference_response

    evals = [fam.evaluate(r, reference_response(r["scene"], variant=variant), detail="minimal") for r in rows]
    return sum(e.score for e in evals) / len(evals), sum(e.passed for e in evals)


def test_solver_is_math_only_python() -> None:
    fam = BouncingSimFamily("medium")
    src = solver_source(fam.tasks("test")[0]["scene"])
    tree = ast.parse(src)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [a.name for n in imports for a in n.names] == ["math"]
    assert any(isinstance(n, ast.FunctionDef) and n.name == "predict_position" for n in tree.body)


@pytest.mark.parametrize("level", ["easy", "medium"])
def test_gold_solver_passes(inprocess: None, level: str) -> None:
    fam = BouncingSimFamily(level)
    rows = fam.tasks("test")[:12] + fam.tasks("train")[:4]
    rate, full = _rate(fam, rows, "exact")
    assert full == len(rows) and rate == 1.0


def test_known_wrong_variants_score_partially(inprocess: None) -> None:
    fam = BouncingSimFamily("medium")
    rows = fam.tasks("test")[:8]
    no_collisions, _ = _rate(fam, rows, "no_collisions")
    equal_mass, equal_full = _rate(fam, rows, "equal_mass")
    circles, circles_full = _rate(fam, rows, "circles")
    # measured on 20 medium test tasks: no collisions 0.15, equal masses 0.70, circles 0.43 per test
    assert 0.0 < no_collisions < 0.35
    assert 0.4 < equal_mass < 0.95 and equal_full < len(rows)
    assert 0.2 < circles < 0.8 and circles_full < len(rows)


def test_other_single_container_families(inprocess: None) -> None:
    for family in ("B", "C", "D"):
        fam = BouncingSimFamily("easy", family=family, num_train=1, num_test=2)
        _, full = _rate(fam, fam.tasks("test"), "exact")
        assert full == 2, family


@pytest.mark.slow
@pytest.mark.parametrize("level", ["easy", "medium"])
def test_gold_solver_on_the_whole_test_split_in_the_sandbox(level: str) -> None:
    pytest.importorskip("resd_envs.sandbox", reason="the sandbox package is not installed")
    fam = BouncingSimFamily(level)
    rows = fam.tasks("test")
    evals = [fam.evaluate(r, fam.reference_response(r), detail="minimal") for r in rows]
    passed = sum(e.passed for e in evals)
    print(f"\n{level}: gold solver passes {passed}/{len(rows)} test tasks in the sandbox")
    assert passed >= 0.95 * len(rows)

"""Scoring never raises for a response and costs bounded time per KB, for every env's ``evaluate``.

Property-based: hypothesis builds adversarial responses from pieces that stress each extractor
(deep bracket nesting, unclosed tags and fences, thinking tags, JSON fragments, huge repeats) and
checks that ``evaluate`` returns an Evaluation at every feedback level. The time bound is generous
(well above the measured cost) so the test does not flake: < 1 s per 100 KB plus a fixed 2 s.
BouncingSim responses that contain a runnable fence would start the sandbox; its extraction and
scoring of returned values are fuzzed in process, and ``evaluate`` runs on the code-free responses.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resd_envs
from resd_envs.bouncingsim.extract import extract_program as bsim_extract
from resd_envs.bouncingsim.scoring import score_answer
from resd_envs.core.results import ERROR_TYPES, FEEDBACK_DETAILS, Evaluation
from resd_envs.finer.family import FinerFamily

PIECES = [
    "[", "]", "{", "}", "(", ")", "<answer>", "</answer>", "<ANSWER>", "<think>", "</think>", "<reasoning>",
    "```", "```manufactoria\n", "```python\n", "```json\n", "\\boxed{", '"final_answer": "', "final answer is ",
    "Answer:", "Tags:", "START start:\n    NEXT a\n", "PULLER_RB a:\n    [R] a\n", "END end\n", "    [EMPTY] end\n",
    "Revenues,", "Goodwill", ",", "\n", " ", "\"", "'", "\\", "\x00", "é", "🙂", "9" * 50, "-", "#",
]


@st.composite
def adversarial(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, 3000)), min_size=0, max_size=6))
    noise = draw(st.text(max_size=40))
    return "".join(piece * count for piece, count in parts) + noise


def _timed(fn, response: str) -> float:
    start = time.perf_counter()
    fn(response)
    return time.perf_counter() - start


def _bound(response: str) -> float:
    return 2.0 + len(response) / 100_000


@pytest.fixture(scope="module")
def finer(data_dir: Path) -> tuple[FinerFamily, dict]:
    fam = FinerFamily(data_dir=data_dir / "finer")
    return fam, fam.tasks("test")[0]


def _check(ev: Evaluation) -> None:
    assert isinstance(ev, Evaluation) and 0.0 <= ev.score <= 1.0
    assert ev.error_type is None or ev.error_type in ERROR_TYPES
    assert isinstance(ev.feedback, str) and isinstance(ev.privileged_feedback, str)


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(response=adversarial())
def test_manufactoria_never_raises(response: str) -> None:
    fam = resd_envs.family("resd/Manufactoria-Has-v0")
    task = fam.tasks("test")[0]
    for detail in FEEDBACK_DETAILS:
        assert _timed(lambda r: _check(fam.evaluate(task, r, detail=detail)), response) < _bound(response)


@FUZZ
@given(response=adversarial())
def test_finer_never_raises(finer, response: str) -> None:
    fam, task = finer
    for detail in FEEDBACK_DETAILS:
        assert _timed(lambda r: _check(fam.evaluate(task, r, detail=detail)), response) < _bound(response)


@FUZZ
@given(response=adversarial())
def test_bouncingsim_extraction_and_code_free_evaluate_never_raise(response: str) -> None:
    assert _timed(bsim_extract, response) < _bound(response)
    if bsim_extract(response) is None:
        fam = resd_envs.family("resd/BouncingSim-Easy-v0")
        _check(fam.evaluate(fam.tasks("test")[0], response, detail="full"))


values = st.recursive(
    st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(), st.text(max_size=5),
              st.sampled_from([10**400, -(10**4000), 2**1100])),
    lambda children: st.lists(children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_bouncingsim_scoring_of_any_returned_value_never_raises(value) -> None:
    case = score_answer(0.1, value, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert case.passed in (True, False) and (case.passed or case.problem or case.errors is not None)


# -- the worst cases named in the issue, each with the same bound --------------------------------------
WORST = {
    "finer_brackets": "[" * 1100,
    "finer_braces": "{" * 50_000,
    "answer_tags": "<answer>" * 25_000,
    "unclosed_fences": "```\n" * 50_000,
    "think_tags": "<think>" * 25_000,
    "boxed": "\\boxed{" * 30_000,
    "final_pairs": '"final_answer": "' * 20_000,
    "long_line": "Revenues," * 50_000,
    "manufactoria_nodes": "PULLER_RB a:\n    [R] a\n" * 10_000,
    "deep_nesting_mixed": "([{<answer>" * 20_000,
}


@pytest.mark.parametrize("name", sorted(WORST))
def test_named_worst_cases(finer, name: str) -> None:
    response = WORST[name]
    fam, task = finer
    manu = resd_envs.family("resd/Manufactoria-Has-v0")
    manu_task = manu.tasks("test")[0]
    assert _timed(lambda r: _check(fam.evaluate(task, r)), response) < _bound(response)
    assert _timed(lambda r: _check(manu.evaluate(manu_task, r)), response) < _bound(response)
    assert _timed(bsim_extract, response) < _bound(response)

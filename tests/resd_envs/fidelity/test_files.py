"""Real files in each reference format: rows that disagree on purpose are found, malformed rows are
reported with their line number and skipped, and the run stops after too many of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resd_envs.errors import ConfigError, ResdEnvError, UnknownEnvError
from resd_envs.fidelity import run_fidelity
from resd_envs.fidelity.bouncingsim import parse_assert
from resd_envs.fidelity.manufactoria import api_test_passed
from resd_envs.fidelity.rows import RowFormatError

DATA = Path(__file__).resolve().parent / "data"


def _status(report) -> dict[int, str]:
    return {c.line: c.status for c in report.checks if not c.agree}


def test_manufactoria_file_finds_planted_disagreements_and_bad_rows() -> None:
    report = run_fidelity("resd/Manufactoria-Has-v0", DATA / "manufactoria_check.jsonl")
    assert _status(report) == {6: "DISAGREE", 7: "DISAGREE", 12: "DISAGREE"}
    flipped = next(c for c in report.checks if c.line == 6)
    assert flipped.ours["result"] == "accept" and flipped.reference["result"] == "reject"
    assert "program" in flipped.input and "tape" in flipped.input
    steps = next(c for c in report.checks if c.line == 7)
    assert steps.reference["steps"] == steps.ours["steps"] + 1
    reward = next(c for c in report.checks if c.line == 12)
    assert reward.ours["reward"] == 0.5 and reward.reference["reward"] == 0.0
    errors = {e.line: e.message for e in report.row_errors}
    assert sorted(errors) == [8, 9, 10, 13, 14]
    assert "not valid JSON" in errors[8]
    assert 'missing field "result"' in errors[9]
    assert "'maybe'" in errors[10] and "accept, reject or error" in errors[10]
    assert 'missing field "test_cases"' in errors[13]
    assert "not an object" in errors[14]
    assert report.agreed == 6 and not report.ok


def test_bouncingsim_file_finds_shifted_positions() -> None:
    report = run_fidelity("resd/BouncingSim-Easy-v0", DATA / "bouncingsim_check.jsonl")
    bad = report.disagreements()
    assert [(c.line, c.input["time"]) for c in bad] == [(4, 0.5), (4, 1.0)]  # the two shifted times
    assert all(c.status == "DISAGREE" and c.value > 50 for c in bad)
    assert report.worst[0]["uid"] == "shifted/G_1_2" and report.worst[0]["mean_error"] > 79
    g = report.groups["G/easy"]
    assert g["scenes"] == 3 and g["checks"] == 45  # G_1_2, its DELTA-layout twin G_1_1, the shifted copy
    assert g["within_tolerance"] == pytest.approx(43 / 45)
    assert g["error_median"] < 1 and g["error_max"] > 79 and g["error_median"] <= g["error_p95"] <= g["error_max"]
    errors = {e.line: e.message for e in report.row_errors}
    assert sorted(errors) == [5, 6, 7]
    assert "shape (14, 3, 2)" in errors[5]
    assert "ground_truth[3]" in errors[6]
    assert "no scene" in errors[7]


def test_finer_file_finds_flipped_verdict_and_labels_extraction() -> None:
    report = run_fidelity("resd/Finer-v0", DATA / "finer_check.jsonl")
    assert _status(report) == {5: "DISAGREE", 6: "known"}
    errors = {e.line: e.message for e in report.row_errors}
    assert sorted(errors) == [7, 8, 9]
    assert '"is_correct" is str' in errors[7] and 'missing field "target"' in errors[8]


def test_stops_after_max_errors(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    good = (DATA / "finer_check.jsonl").read_text(encoding="utf-8").splitlines()[0]
    path.write_text("\n".join([good] + ["nonsense"] * 5 + [good]) + "\n", encoding="utf-8")
    report = run_fidelity("resd/Finer-v0", path, max_errors=3)
    assert report.stopped_early and [e.line for e in report.row_errors] == [2, 3, 4] and report.total == 1


def test_unusable_inputs_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ResdEnvError, match="does not exist"):
        run_fidelity("resd/Finer-v0", tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ResdEnvError, match="empty"):
        run_fidelity("resd/Finer-v0", empty)
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(ResdEnvError, match=r"line 1: missing field \"response\""):
        run_fidelity("resd/Finer-v0", junk)
    with pytest.raises(UnknownEnvError):
        run_fidelity("resd/Nope-v0")
    with pytest.raises(ConfigError, match="no reference server"):
        run_fidelity("resd/Finer-v0", reference_url="http://127.0.0.1:9")


def test_delta_api_pass_rule_with_output_checks() -> None:
    case = {"check_output": True, "expected_output": "R+", "expected_accepted": True}
    assert api_test_passed(True, "RRR", case)
    assert not api_test_passed(True, "RB", case)
    assert api_test_passed(False, "RB", dict(case, expected_accepted=False))
    plain = {"check_output": True, "expected_output": "RB", "expected_accepted": True}
    assert api_test_passed(True, "RB", plain) and not api_test_passed(True, "RBR", plain)
    broken = {"check_output": True, "expected_output": "R(", "expected_accepted": True}  # bad regex -> equality
    assert api_test_passed(True, "R(", broken)


def test_assert_parsing() -> None:
    t, pos, tol = parse_assert("assert check_distance(predict_position(0.30), [[1.5, 2.0], [3, 4]]) <= 50.0", 0)
    assert (t, pos, tol) == (0.3, [[1.5, 2.0], [3, 4]], 50.0)
    with pytest.raises(RowFormatError, match=r"ground_truth\[2\]"):
        parse_assert("assert False", 2)


def test_response_row_with_results_compares_each_test(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (DATA / "manufactoria_check.jsonl").read_text().splitlines()[10:11]]
    row = rows[0]
    assert "results" in row
    row["results"][0]["actual_accepted"] = not row["results"][0]["actual_accepted"]
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    report = run_fidelity("resd/Manufactoria-Has-v0", path)
    [check] = report.checks
    assert not check.agree and check.ours["actual_accepted"] != check.reference["actual_accepted"]

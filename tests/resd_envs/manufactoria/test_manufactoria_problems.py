"""The task set: DELTA's 874 problems in DELTA's split order, seeded test cases, stable checksums."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import resd_envs
from resd_envs.manufactoria import family as fam_module
from resd_envs.manufactoria.problems import Problem, build_tests, is_subsequence, predicate

SPLIT_FILE = Path(__file__).resolve().parents[2] / "data" / "fidelity" / "manufactoria_has_split.jsonl"
ENV_ID = "resd/Manufactoria-Has-v0"


@pytest.fixture(scope="module")
def fam() -> resd_envs.core.family.TaskFamily:
    return resd_envs.family(ENV_ID)


def test_split_order_and_parameters_equal_the_reference_file(fam) -> None:
    if not SPLIT_FILE.is_file():
        pytest.fail(f"reference split file {SPLIT_FILE} is missing")
    reference = [json.loads(line) for line in SPLIT_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    ours = [
        {"split": split, "position": row["index"], "family": row["family"], "params": row["params"]}
        for split in ("train", "test")
        for row in fam.tasks(split)
    ]
    assert ours == reference


def test_sizes_family_mix_and_unique_ids(fam) -> None:
    train, test = fam.tasks("train"), fam.tasks("test")
    assert (len(train), len(test)) == (742, 132)
    mix = {s: collections.Counter(r["family"] for r in fam.tasks(s)) for s in ("train", "test")}
    assert mix["train"] == {"contains_count": 163, "contains_ordered": 292, "contains_substring": 287}
    assert mix["test"] == {"contains_count": 31, "contains_ordered": 48, "contains_substring": 53}
    ids = [r["task_id"] for r in train + test]
    assert len(set(ids)) == 874
    assert ids[742:747] == ["has-substring-RYRY", "has-ordered-RBYB", "has-count-R1-Y3", "has-count-Y2-G4", "has-ordered-YRG"]


def test_checksums_match_the_shipped_constants(fam) -> None:
    assert fam.verify_checksums() == fam_module.EXPECTED_SHA256
    assert {s: fam.task_set_sha256(s) for s in fam.splits} == fam_module.EXPECTED_SHA256


def test_task_set_does_not_depend_on_the_hash_seed() -> None:
    code = "import resd_envs; f = resd_envs.family('resd/Manufactoria-Has-v0'); print(f.task_set_sha256('test'))"
    digests = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        digests.add(out.stdout.strip())
    assert digests == {fam_module.EXPECTED_SHA256["test"]}


def test_every_case_is_labelled_by_the_predicate(fam) -> None:
    for row in fam.tasks("train") + fam.tasks("test"):
        accepts = predicate(row["family"], row["params"])
        tests = row["tests"]
        assert 3 <= sum(t["accept"] for t in tests) and 3 <= sum(not t["accept"] for t in tests)
        assert len(tests) <= 35 and tests[0]["tape"] == ""
        assert len({t["tape"] for t in tests}) == len(tests)
        assert all(t["accept"] == accepts(t["tape"]) and set(t["tape"]) <= set("RBYG") for t in tests)
        assert [t["id"] for t in tests] == [f"t{i:02d}" for i in range(len(tests))]


def test_rows_carry_prompt_and_params(fam) -> None:
    row = resd_envs.load_tasks(ENV_ID, "test")[0]
    assert {"task_id", "prompt", "family", "params", "tests", "messages"} <= set(row)
    assert json.loads(row["params"]) == {"sequence": "RYRY"} and row["criteria"] in row["prompt"]
    assert "```manufactoria" in row["prompt"] and "1000" in row["prompt"]


def test_tests_are_deterministic() -> None:
    problem = Problem("contains_count", {"requirements": [["B", 1], ["Y", 3], ["G", 1]]})
    assert build_tests(problem) == build_tests(problem)


def test_predicates() -> None:
    assert is_subsequence("RBY", "GRGBGY") and not is_subsequence("RBY", "YBR")
    assert predicate("contains_count", {"requirements": [["R", 2], ["G", 1]]})("RGBR")
    assert not predicate("contains_count", {"requirements": [["R", 2], ["G", 1]]})("RGB")
    assert predicate("contains_substring", {"sequence": "RYR"})("BRYRB")
    with pytest.raises(ValueError, match="unknown Manufactoria family"):
        predicate("contains_nothing", {})

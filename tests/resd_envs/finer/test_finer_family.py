"""FinerFamily/FinerEnv: data location, splits, task ids, gold runs over the shared files, errors."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest

import resd_envs
from resd_envs.cli import main as cli_main
from resd_envs.core.family import sha256_of_rows
from resd_envs.errors import ConfigError, DataNotFoundError
from resd_envs.finer.env import FinerEnv
from resd_envs.finer.family import DATA_ENV_VAR, STANDARD_FILES, FinerFamily

VAL = STANDARD_FILES["test"]
SUBSET = STANDARD_FILES["test_subset"]
ENV_ID = "resd/Finer-v0"


@pytest.fixture(scope="module")
def finer_dir(data_dir: Path) -> Path:
    return data_dir / "finer"


@pytest.fixture(scope="module")
def fam(finer_dir: Path) -> FinerFamily:
    return FinerFamily(data_dir=finer_dir)


@pytest.fixture()
def mini_file(tmp_path: Path, finer_dir: Path) -> Path:
    """The first 3 records of the val file under another name."""
    lines = (finer_dir / VAL).read_text(encoding="utf-8").splitlines()[:3]
    path = tmp_path / "mini.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_shared_folder_gives_test_and_test_subset(fam: FinerFamily) -> None:
    assert fam.splits == ("test", "test_subset")
    test, subset = fam.tasks("test"), fam.tasks("test_subset")
    assert (len(test), len(subset)) == (500, 441)
    assert all(row["num_questions"] == 4 and len(row["questions"]) == 4 for row in test + subset)
    assert fam.describe()["labels"] == 139 and fam.describe()["files"]["train"] == "missing"


def test_task_ids_are_stable_unique_and_readable(fam: FinerFamily) -> None:
    rows = fam.tasks("test") + fam.tasks("test_subset")
    ids = [row["task_id"] for row in rows]
    assert len(set(ids)) == len(ids) == 941
    assert ids[0] == "finer_val_batched_500_samples-0000-ae8c5831"
    assert all(re.fullmatch(r"finer_(val|test)_[a-z0-9_]+-\d{4}-[0-9a-f]{8}", i) for i in ids)
    assert FinerFamily(data_dir=fam.data_location).tasks("test")[7]["task_id"] == ids[7]


@pytest.mark.parametrize("split", ["test", "test_subset"])
def test_gold_targets_score_one_on_both_shared_files(fam: FinerFamily, split: str) -> None:
    rows = fam.tasks(split)
    evaluations = [fam.evaluate(row, fam.reference_response(row)) for row in rows]
    per_task = sum(ev.passed for ev in evaluations) / len(rows)
    per_test_case = sum(ev.num_passed for ev in evaluations) / sum(ev.num_tests for ev in evaluations)
    assert (per_task, per_test_case) == (1.0, 1.0)
    raw = FinerFamily(data_dir=fam.data_location, prompt_style="raw")
    assert all(raw.evaluate(row, row["target"]).passed for row in raw.tasks(split))


def test_cli_reference_eval_reports_full_accuracy(
    finer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["eval", ENV_ID, "--reference", "--workers", "1", "-o", f"data_dir={finer_dir}"]) == 0
    out = capsys.readouterr().out
    assert "941 tasks, 3764 test cases" in out
    assert "per-task accuracy:      1.0000" in out and "per-test-case accuracy: 1.0000" in out


def test_verify_by_task_id(finer_dir: Path) -> None:
    fam = resd_envs.family(ENV_ID, data_dir=str(finer_dir))
    rows = fam.tasks("test_subset")[:2]
    results = resd_envs.verify(
        ENV_ID, [r["task_id"] for r in rows], [fam.reference_response(rows[0]), "Revenues"],
        reward_mode="pass_rate", data_dir=str(finer_dir),
    )
    assert results[0].passed and results[0].reward == 1.0
    assert not results[1].passed and results[1].error_type == "format_error"
    assert results[1].extra["num_answers"] == 1


def test_ambiguous_questions_are_marked_in_rows(fam: FinerFamily) -> None:
    counts = [sum(len(row["ambiguous_questions"]) for row in fam.tasks(s)) for s in ("test", "test_subset")]
    assert counts == [80, 93]  # the entity token occurs more than once in its sentence


def test_prompt_styles(fam: FinerFamily, finer_dir: Path) -> None:
    row = fam.tasks("test")[0]
    assert row["prompt"].startswith(row["context"]) and "<answer>" in row["prompt"]
    assert fam.reference_response(row) == f"<answer>{row['target']}</answer>"
    raw = FinerFamily(data_dir=finer_dir, prompt_style="raw")
    assert raw.tasks("test")[0]["prompt"] == row["context"]
    assert raw.reference_response(row) == row["target"]


def test_env_defaults_to_test_split_and_train_needs_its_file(finer_dir: Path) -> None:
    env = resd_envs.make(ENV_ID)
    _, info = env.reset(seed=0)
    assert info["split"] == "test" and info["task_id"].startswith("finer_val_batched_500_samples-")
    with pytest.raises(DataNotFoundError, match=r"finer_train_batched_1000_samples\.jsonl.*finer\.builder"):
        resd_envs.make(ENV_ID, split="train")
    with pytest.raises(ConfigError, match="no split 'validation'"):
        FinerEnv(split="validation")


def test_train_split_appears_when_its_file_exists(tmp_path: Path, mini_file: Path, finer_dir: Path) -> None:
    shutil.copy(mini_file, tmp_path / STANDARD_FILES["train"])
    shutil.copy(finer_dir / VAL, tmp_path / VAL)
    fam = FinerFamily(data_dir=tmp_path)
    assert fam.splits == ("train", "test")
    assert len(fam.tasks("train")) == 3
    assert fam.tasks("train")[0]["task_id"].startswith("finer_train_batched_1000_samples-0000-")
    env = FinerEnv(split="train", data_dir=str(tmp_path))
    assert env.reset(seed=1)[1]["split"] == "train"


def test_missing_data_errors_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    with pytest.raises(DataNotFoundError, match=f"no data folder is configured. Set {DATA_ENV_VAR}"):
        FinerEnv()
    with pytest.raises(DataNotFoundError, match="does not exist"):
        FinerEnv(data_dir=str(tmp_path / "absent"))
    with pytest.raises(DataNotFoundError, match=f"{VAL} is not in .*ace-agent/ace"):
        FinerFamily(data_dir=tmp_path).tasks("test")


def test_env_var_and_data_path_alias(monkeypatch: pytest.MonkeyPatch, finer_dir: Path) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(finer_dir))
    assert FinerFamily().location_source == f"${DATA_ENV_VAR}"
    assert len(FinerFamily(data_path=finer_dir).tasks("test")) == 500
    with pytest.raises(ConfigError, match="disagree"):
        FinerFamily(data_dir=finer_dir, data_path="/elsewhere")


def test_single_file_location_is_the_test_split(mini_file: Path) -> None:
    fam = FinerFamily(data_dir=mini_file)
    assert fam.splits == ("test",) and len(fam.tasks("test")) == 3
    with pytest.raises(DataNotFoundError, match="single file"):
        fam.tasks("test_subset")


def test_named_files_and_file_splits(mini_file: Path, finer_dir: Path) -> None:
    fam = FinerFamily(data_dir=finer_dir, files={"mini": str(mini_file)})
    assert fam.splits == ("test", "test_subset", "mini")
    task_id = fam.tasks("mini")[1]["task_id"]
    assert task_id.startswith("mini-0001-") and fam.task_by_id(task_id)["line"] == 2
    env = FinerEnv(split=f"file:{mini_file}", data_dir=str(finer_dir))
    _, info = env.reset(options={"task_index": 2})
    assert info["task_id"].startswith("mini-0002-") and env.unwrapped.family.splits[-1] == f"file:{mini_file}"
    with pytest.raises(DataNotFoundError, match="is not a file"):
        FinerEnv(split="file:/no/such/file.jsonl")
    with pytest.raises(DataNotFoundError, match=r"files\['gone'\]"):
        FinerFamily(files={"gone": "/no/such.jsonl"}).tasks("gone")
    with pytest.raises(ConfigError, match="split name"):
        FinerFamily(files={"bad name": str(mini_file)})


def test_one_file_in_two_splits_is_refused(mini_file: Path) -> None:
    fam = FinerFamily(data_dir=mini_file, files={"again": str(mini_file)})
    fam.tasks("test")
    with pytest.raises(ConfigError, match="same task ids"):
        fam.tasks("again")


def test_invalid_user_file_names_its_line(tmp_path: Path, mini_file: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    text = mini_file.read_text(encoding="utf-8") + json.dumps({"context": "c"}) + "\n"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:4: 'target'"):
        FinerFamily(files={"bad": str(bad)}).tasks("bad")


def test_pickling_and_checksum(fam: FinerFamily) -> None:
    clone = pickle.loads(pickle.dumps(fam))
    assert clone.tasks("test")[5] == fam.tasks("test")[5]
    assert fam.task_set_sha256("test") == sha256_of_rows(fam.tasks("test")) == clone.task_set_sha256("test")
    assert fam.task_set_sha256("test") != fam.task_set_sha256("test_subset")


def test_step_and_pass_rate_reward(finer_dir: Path) -> None:
    env = resd_envs.make(ENV_ID, reward_mode="pass_rate", data_dir=str(finer_dir))
    env.reset(options={"task_index": 0})
    gold = env.unwrapped.task["gold"]
    _, reward, terminated, _, info = env.step(f"<answer>{gold[0]},{gold[1]},{gold[2]},Revenues</answer>")
    assert reward == 0.75 and terminated and info["num_passed"] == 3 and info["error_type"] == "wrong_answer"
    assert [t["passed"] for t in info["test_results"]] == [True, True, True, False]

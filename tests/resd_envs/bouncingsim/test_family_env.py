"""The family and the env: options, user scenes, pictures, pickling (programs run in-process)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import resd_envs
from resd_envs.bouncingsim.family import BouncingSimFamily
from resd_envs.errors import ConfigError, DataNotFoundError


def test_shipped_splits_and_ids() -> None:
    easy, medium = BouncingSimFamily("easy"), BouncingSimFamily("medium")
    assert (len(easy.tasks("train")), len(easy.tasks("test"))) == (640, 100)
    assert (len(medium.tasks("train")), len(medium.tasks("test"))) == (320, 100)
    assert easy.env_id == "resd/BouncingSim-Easy-v0" and medium.env_id == "resd/BouncingSim-Medium-v0"
    row = medium.tasks("test")[0]
    assert {"task_id", "prompt", "scene", "timestamps", "expected_positions", "n_balls"} <= set(row)
    assert BouncingSimFamily.runs_code is True


def test_bad_options_are_listed_together() -> None:
    with pytest.raises(ConfigError) as info:
        BouncingSimFamily("impossible", family="Z", sandbox="docker", call_timeout_s=-1)
    text = str(info.value)
    assert all(word in text for word in ("level=", "family=", "sandbox=", "call_timeout_s="))
    with pytest.raises(DataNotFoundError, match="does not exist"):
        BouncingSimFamily(scenes="/no/such/file.jsonl")


def test_user_scenes_with_their_own_answers(inprocess: None, sample_rows: list[dict], tmp_path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in sample_rows if r["family"] == "G"), encoding="utf-8"
    )
    fam = BouncingSimFamily(scenes=str(path))
    rows = fam.tasks("test")
    assert [r["task_id"] for r in rows][:2] == ["s7/G_1_1", "s7/G_1_2"]
    assert (
        rows[0]["expected_positions"] == sample_rows[10]["expected_positions"]
    )  # the reference's Box2D answers
    for row in rows:  # the gold solver also passes against the reference's own answers
        assert fam.evaluate(row, fam.reference_response(row)).passed


def test_published_row_with_ground_truth_asserts(inprocess: None, sample_rows: list[dict]) -> None:
    src = sample_rows[12]
    asserts = [
        f"assert check_distance(predict_position({t:.2f}), {json.dumps(e)}) <= 50.0"
        for t, e in zip(src["timestamps"], src["expected_positions"])
    ]
    row = {"id": "hf-1", "scene_config": json.dumps(src["scene"]), "ground_truth": asserts}
    fam = BouncingSimFamily(scenes=[row])
    task = fam.tasks("train")[0]
    assert task["timestamps"] == src["timestamps"] and task["expected_positions"] == src["expected_positions"]
    assert fam.evaluate(task, fam.reference_response(task)).passed


def test_plain_scene_dicts_get_oracle_answers(sample_rows: list[dict]) -> None:
    fam = BouncingSimFamily(scenes=[sample_rows[15]["scene"]])
    task = fam.tasks("test")[0]
    assert task["task_id"] == "user-0000" and len(task["expected_positions"]) == 15


def test_generated_families(inprocess: None) -> None:
    fam = BouncingSimFamily("medium", family="D", num_train=2, num_test=1, seed=3)
    task = fam.tasks("test")[0]
    assert task["family"] == "D" and "Gravity: constant" in task["prompt"]
    assert fam.describe()["source"] == "generated"


def test_family_pickles_without_rows() -> None:
    fam = BouncingSimFamily("easy")
    fam.tasks("test")
    clone = pickle.loads(pickle.dumps(fam))
    assert clone._rows == {} and clone.tasks("test")[0] == fam.tasks("test")[0]


def test_rgb_render_and_files(inprocess: None, tmp_path) -> None:
    pytest.importorskip("PIL")
    fam = BouncingSimFamily("easy")
    task = fam.tasks("test")[0]
    plain = fam.render_rgb(task)
    assert plain.shape == (480, 480, 3) and plain.dtype == np.uint8
    wrong = "```python\ndef predict_position(t):\n    return [[700.0, 700.0]] * 3\n```"
    overlaid = fam.render_rgb(task, wrong)
    red = (overlaid[..., 0] > 200) & (overlaid[..., 1] < 60) & (overlaid[..., 2] < 60)
    assert red.sum() > 10 and not np.array_equal(plain, overlaid)
    paths = fam.render_files(task, wrong, png=tmp_path / "a.png", gif=tmp_path / "a.gif")
    assert paths == [str(tmp_path / "a.png"), str(tmp_path / "a.gif")]
    from PIL import Image

    with Image.open(paths[1]) as gif:
        assert gif.n_frames > 10


def test_env_rgb_array_mode(inprocess: None) -> None:
    pytest.importorskip("PIL")
    env = resd_envs.make("resd/BouncingSim-Easy-v0", render_mode="rgb_array", split="test")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3)
    _, reward, terminated, _, info = env.step(env.unwrapped.family.reference_response(env.unwrapped.task))
    assert reward == 1.0 and terminated and len(info["test_results"]) == 15
    assert info["test_results"][0]["id"] == "t=0.10" and info["test_results"][0]["score"] == 1.0
    env.close()


def test_pass_rate_reward(inprocess: None) -> None:
    env = resd_envs.make("resd/BouncingSim-Medium-v0", reward_mode="pass_rate", split="test")
    env.reset(options={"task_index": 0})
    task = env.unwrapped.task
    from resd_envs.bouncingsim.solver import reference_response

    _, reward, _, _, info = env.step(reference_response(task["scene"], variant="no_collisions"))
    assert 0.0 < reward < 1.0 and reward == info["score"] and info["error_type"] == "wrong_answer"

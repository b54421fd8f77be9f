"""FinerMini (resd/FinerMini-v0): shipped data reproducible from the ACE files, scoring, env wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import resd_envs
from resd_envs.errors import ConfigError
from resd_envs.finer.labels import LABELS
from resd_envs.finer_mini.build import (
    NUM_CANDIDATES,
    SOURCES,
    SPLIT_FILES,
    WINDOW_CHARS,
    build_split,
    candidates_for,
    sentence_window,
)
from resd_envs.finer_mini.family import DATA_DIR, FinerMiniFamily, predicted_tag

ENV_ID = "resd/FinerMini-v0"
FINER_DATA = Path(__file__).resolve().parents[2] / "data" / "finer"


@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_files_are_rebuilt_byte_for_byte_from_the_ace_files(split: str) -> None:
    rows = build_split(FINER_DATA / SOURCES[split])
    text = "".join(json.dumps(row) + "\n" for row in rows)
    assert (DATA_DIR / SPLIT_FILES[split]).read_text(encoding="utf-8") == text


def test_licence_and_readme_ship_beside_the_data() -> None:
    assert "CC BY-SA 4.0" in (DATA_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "not the benchmark" in (DATA_DIR / "README.md").read_text(encoding="utf-8")


def test_train_and_test_share_no_sentence_and_counts_match_the_docs() -> None:
    train = resd_envs.load_tasks(ENV_ID, "train")
    test = resd_envs.load_tasks(ENV_ID, "test")
    assert (len(train), len(test)) == (1671, 1920)
    assert not {r["sentence"] for r in train} & {r["sentence"] for r in test}


def test_every_task_has_four_distinct_valid_candidates_including_gold() -> None:
    for row in resd_envs.load_tasks(ENV_ID, "test"):
        cands = row["candidates"]
        assert len(set(cands)) == NUM_CANDIDATES and row["gold"] in cands and set(cands) <= set(LABELS)
        assert len(row["sentence"]) <= WINDOW_CHARS + 8  # the window plus two ellipses
        assert row["entity"] in row["sentence"].split()


def test_candidates_are_seeded_by_origin_and_gold_position_varies() -> None:
    assert candidates_for("Revenues", "x:1:q1") == candidates_for("Revenues", "x:1:q1")
    assert candidates_for("Revenues", "x:1:q1") != candidates_for("Revenues", "x:1:q2")
    positions = {candidates_for("Revenues", f"x:{i}:q1").index("Revenues") for i in range(40)}
    assert positions == set(range(NUM_CANDIDATES))


def test_sentence_window_keeps_the_entity_and_marks_cuts() -> None:
    words = [f"w{i}" for i in range(200)]
    words[150] = "42.5"
    cut = sentence_window(" ".join(words), "42.5", max_chars=60)
    assert "42.5" in cut.split() and cut.startswith("... ") and cut.endswith(" ...")
    assert len(cut.removeprefix("... ").removesuffix(" ...")) <= 60
    assert sentence_window("short one 7 here", "7") == "short one 7 here"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<answer>Revenues</answer>", ("Revenues", "answer_tag")),
        ("I think <answer> revenues </answer>", ("Revenues", "answer_tag")),
        ("The tag is Revenues.", ("Revenues", "text")),
        ("<answer>Revenues, Goodwill</answer>", (None, "several_candidates")),
        ("<answer>RevenuesX</answer>", (None, "no_candidate")),
        ("<answer>Revenues", ("Revenues", "answer_tag")),
        ("", (None, "no_candidate")),
    ],
)
def test_predicted_tag_reads_one_whole_candidate(response: str, expected: tuple) -> None:
    assert predicted_tag(response, ["Revenues", "Goodwill", "LineOfCredit", "InterestExpense"]) == expected


def test_a_candidate_inside_a_longer_tag_is_not_read() -> None:
    cands = ["LineOfCredit", "LineOfCreditFacilityMaximumBorrowingCapacity", "Goodwill", "Revenues"]
    assert predicted_tag("<answer>LineOfCreditFacilityMaximumBorrowingCapacity</answer>", cands) == (
        "LineOfCreditFacilityMaximumBorrowingCapacity", "answer_tag")


def test_verify_scores_and_feedback_hides_gold_from_the_policy() -> None:
    row = resd_envs.load_tasks(ENV_ID, "test")[0]
    wrong = next(c for c in row["candidates"] if c != row["gold"])
    right, bad, none = resd_envs.verify(
        ENV_ID, [row["task_id"]] * 3, [f"<answer>{row['gold']}</answer>", f"<answer>{wrong}</answer>", "hello"]
    )
    assert (right.reward, bad.reward, none.reward) == (1.0, 0.0, 0.0)
    assert row["gold"] not in bad.feedback and none.error_type == "format_error"


def test_privileged_feedback_names_the_gold_tag() -> None:
    family = FinerMiniFamily()
    row = family.tasks("test")[0]
    wrong = next(c for c in row["candidates"] if c != row["gold"])
    result = family.evaluate(row, wrong)
    assert row["gold"] in result.privileged_feedback and row["gold"] not in result.feedback
    assert result.privileged_feedback == f"{result.feedback} The correct tag is {row['gold']}."
    assert family.evaluate(row, family.reference_response(row)).passed
    assert family.describe()["gold_feedback"] == "tag"


def test_gold_feedback_reply_writes_the_gold_as_the_reply_and_keeps_the_scores() -> None:
    tag, reply = FinerMiniFamily(), FinerMiniFamily(gold_feedback="reply")
    row = tag.tasks("test")[0]
    wrong = next(c for c in row["candidates"] if c != row["gold"])
    written = reply.evaluate(row, wrong)
    # the gold as the reply itself, the form a small self-teacher continues (docs/finer_mini.md)
    assert written.privileged_feedback == f"{written.feedback} The correct reply is <answer>{row['gold']}</answer>."
    assert written.feedback == tag.evaluate(row, wrong).feedback
    assert written.test_results == tag.evaluate(row, wrong).test_results
    assert reply.evaluate(row, "hello").privileged_feedback.endswith(f"<answer>{row['gold']}</answer>.")
    assert reply.evaluate(row, reply.reference_response(row)).privileged_feedback == "Correct: " \
        f"{row['gold']} is the right tag."
    env = resd_envs.make(ENV_ID, gold_feedback="reply")
    env.reset(seed=0)
    _, _, _, _, info = env.step("hello")
    assert info["privileged_feedback"].endswith(f"The correct reply is <answer>{env.unwrapped.task['gold']}</answer>.")


def test_unknown_gold_feedback_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="gold_feedback='answer' is not one of 'tag', 'reply'"):
        FinerMiniFamily(gold_feedback="answer")


def test_env_episode_and_registry_summary_say_it_is_not_the_benchmark() -> None:
    env = resd_envs.make(ENV_ID)
    prompt, info = env.reset(seed=3)
    assert "<answer></answer>" in prompt and len(prompt) < 1200
    _, reward, terminated, _, _ = env.step("nothing")
    assert reward == 0.0 and terminated
    assert "not the benchmark" in resd_envs.registration.env_entry(ENV_ID).summary


def test_bad_data_dir_and_bad_rows_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        FinerMiniFamily(data_dir=tmp_path / "missing")
    (tmp_path / SPLIT_FILES["test"]).write_text('{"origin": "a"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="needs the keys"):
        FinerMiniFamily(data_dir=tmp_path).tasks("test")

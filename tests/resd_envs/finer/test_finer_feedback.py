"""Feedback text, per-question results and error types for each feedback style and detail level."""

from __future__ import annotations

import pytest

from resd_envs.core.results import ERROR_TYPES
from resd_envs.finer.family import FinerFamily

CONTEXT = (
    "You are XBRL expert.  Here is a list of US GAAP tags options: ,Revenues,LongTermDebt,SharePrice,Goodwill"
    "(etc). Answer the following 4 independent questions by providing only  4 US GAAP tags answers. \n"
    '1. What is best tag for entity "12" in sentence: "Revenues were $ 12 million , up from $ 12 million .?"'
    "\n"
    '2. What is best tag for entity "300" in sentence: "The company has $ 300 million of long-term debt .?"\n'
    '3. What is best tag for entity "4.5" in sentence: "Shares were sold at $ 4.5 per share .?"\n'
    '4. What is best tag for entity "9" in sentence: "The acquisition added $ 9 million of it .?"\n'
    "Output US GAAP tags:"
)
TARGET = "Revenues,LongTermDebt,SharePrice,Goodwill"
TASK = {
    "task_id": "hand-0000-00000000",
    "prompt": CONTEXT,
    "target": TARGET,
    "questions": [
        {"number": 1, "entity": "12", "sentence": "Revenues were $ 12 million , up from $ 12 million .",
         "occurrences": 2},
        {"number": 2, "entity": "300", "sentence": "The company has $ 300 million of long-term debt .",
         "occurrences": 1},
        {"number": 3, "entity": "4.5", "sentence": "Shares were sold at $ 4.5 per share .", "occurrences": 1},
        {"number": 4, "entity": "9", "sentence": "The acquisition added $ 9 million of it .",
         "occurrences": 1},
    ],
}


@pytest.fixture(scope="module")
def fam() -> FinerFamily:
    return FinerFamily(data_dir="/nonexistent-finer-folder")


def test_all_correct(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, f"<answer>{TARGET}</answer>")
    assert ev.passed and ev.error_type is None and ev.score == 1.0
    assert [t.id for t in ev.test_results] == ["q1", "q2", "q3", "q4"]
    assert ev.feedback.startswith("All 4 tags are correct.")


def test_wrong_tag_shows_predicted_and_gold(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, "Revenues,LongTermDebt,SharePrice,Depreciation")
    assert ev.error_type == "wrong_answer" and ev.score == 0.75 and not ev.passed
    assert "3/4 tags correct" in ev.feedback
    assert "Q4 wrong" in ev.feedback and "predicted: Depreciation" in ev.feedback
    assert "gold:      Goodwill" in ev.privileged_feedback and "Goodwill" not in ev.feedback
    q4 = ev.test_results[3]
    assert not q4.passed and "Depreciation" in q4.message and "Goodwill" not in q4.message
    assert ev.test_results[1].passed and "right" in ev.test_results[1].message


def test_too_few_tags_is_a_format_error(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, "Revenues,LongTermDebt,SharePrice")
    assert ev.error_type == "format_error" and ev.score == 0.75
    assert "expected 4 comma-separated tags, got 3" in ev.feedback
    assert ev.extra["flags"]["q4"] == ["missing"]


def test_too_many_tags_are_reported_but_ignored(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, TARGET + ",Depreciation")
    assert ev.passed and ev.error_type is None
    assert "got 5" in ev.feedback and '"Depreciation"' in ev.feedback and "ignored" in ev.feedback
    wrong = fam.evaluate(TASK, "Revenues,LongTermDebt,SharePrice,Depreciation,Goodwill")
    assert wrong.error_type == "format_error" and wrong.score == 0.75


def test_invalid_tags_get_closest_valid_tags(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, "Revenue,LongTermDebts,SharePrice,Goodwill")
    assert ev.extra["invalid_tags"] == ["Revenue", "LongTermDebts"]
    assert "not one of the valid tags; closest: Revenues" in ev.feedback
    assert "closest: LongTermDebt" in ev.feedback
    assert ev.extra["flags"]["q2"] == ["invalid_tag"]


def test_ambiguous_question_is_flagged_everywhere(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, TARGET)
    assert ev.extra["ambiguous_questions"] == [1]
    assert ev.extra["flags"] == {"q1": ["ambiguous"]}
    assert "ambiguous" in ev.test_results[0].message and "occurs 2 times" in ev.test_results[0].message
    assert "ambiguous" not in ev.test_results[1].message
    assert "occurs 2 times in this sentence" in ev.feedback


def test_no_answer(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, "<think>hmm, the first one is")
    assert ev.error_type == "format_error" and ev.score == 0.0
    assert "unclosed thinking block" in ev.feedback
    assert fam.evaluate(TASK, "").error_type == "format_error"


def test_detail_levels(fam: FinerFamily) -> None:
    response = "Revenues,Goodwill,SharePrice,Goodwill"
    full = fam.evaluate(TASK, response, detail="full").feedback
    summary = fam.evaluate(TASK, response, detail="summary").feedback
    minimal = fam.evaluate(TASK, response, detail="minimal").feedback
    assert 'in "The company has $ 300 million' in full
    assert "Q2 wrong: entity \"300\" predicted \"Goodwill\"" in summary and "LongTermDebt" not in summary
    privileged = fam.evaluate(TASK, response, detail="privileged")
    assert "gold:      LongTermDebt" in privileged.feedback and privileged.feedback == privileged.privileged_feedback
    assert "The company has" not in summary
    assert minimal == "3/4 tags correct; a sample counts as solved only when all 4 are right."
    assert len(minimal) < len(summary) < len(full)


def test_max_chars_caps_feedback(fam: FinerFamily) -> None:
    ev = fam.evaluate(TASK, "a,b,c,d", max_chars=120)
    assert len(ev.feedback) <= 120 and "truncated" in ev.feedback


def test_ace_style_is_sample_level_with_gold_string() -> None:
    fam = FinerFamily(data_dir="/nonexistent-finer-folder", feedback_style="ace")
    wrong = fam.evaluate(TASK, "<answer>Revenues,Goodwill,SharePrice,Goodwill</answer>")
    assert wrong.privileged_feedback == (
        "Incorrect: the predicted answer does not match the ground truth.\n"
        "Predicted answer: Revenues,Goodwill,SharePrice,Goodwill\n"
        f"Ground truth: {TARGET}"
    )
    assert wrong.feedback == wrong.privileged_feedback.rsplit("\n", 1)[0]  # the policy never sees the gold
    assert wrong.score == 0.75  # per-question results are still there for pass_rate
    right = fam.evaluate(TASK, TARGET)
    assert right.feedback.startswith("Correct: the predicted answer matches") and right.passed


def test_resd_style() -> None:
    fam = FinerFamily(data_dir="/nonexistent-finer-folder", feedback_style="resd")
    assert fam.evaluate(TASK, TARGET).feedback == ""
    partial = fam.evaluate(TASK, "Revenues,x,y,z")
    assert partial.privileged_feedback == f"Partially correct. The correct tags are: {TARGET}"
    assert partial.feedback == "Partially correct."
    assert fam.evaluate(TASK, "w,x,y,z").feedback.startswith("Completely incorrect.")
    assert "no final answer" in fam.evaluate(TASK, "").feedback


@pytest.mark.parametrize("style", ["detailed", "ace", "resd"])
def test_reveal_gold_false_hides_gold(style: str) -> None:
    fam = FinerFamily(data_dir="/nonexistent-finer-folder", feedback_style=style, reveal_gold=False)
    ev = fam.evaluate(TASK, "Depreciation,Depreciation,Depreciation,Depreciation")
    for tag in ("LongTermDebt", "SharePrice", "Goodwill"):
        assert tag not in ev.feedback and tag not in ev.privileged_feedback
        assert all(tag not in t.message for t in ev.test_results)


@pytest.mark.parametrize(
    "response", ["", "x", "<answer>", "{", "\\boxed{", "</think>", "\x00" * 10, "a," * 5000]
)
def test_never_raises_and_error_types_are_known(fam: FinerFamily, response: str) -> None:
    ev = fam.evaluate(TASK, response)
    assert ev.error_type in ERROR_TYPES and not ev.passed and ev.num_tests == 4


def test_bad_styles_are_config_errors() -> None:
    from resd_envs.errors import ConfigError

    with pytest.raises(ConfigError, match="feedback_style"):
        FinerFamily(feedback_style="verbose")
    with pytest.raises(ConfigError, match="prompt_style"):
        FinerFamily(prompt_style="chat")

"""ACE's scoring rules on hand-made (response, target) pairs: one test per rule."""

from __future__ import annotations

import pytest

from resd_envs.finer import score
from resd_envs.finer.scoring import compare, gold_tags

GOLD = "Revenues,LongTermDebt,SharePrice,Goodwill"


def test_exact_answer_is_fully_correct() -> None:
    result = score("Revenues,LongTermDebt,SharePrice,Goodwill", GOLD)
    assert result.correct == (True, True, True, True)
    assert result.per_test_case == 1.0 and result.per_task is True


def test_spaces_around_pieces_are_trimmed() -> None:
    result = score("  Revenues ,LongTermDebt,   SharePrice\t, Goodwill  ", GOLD)
    assert result.correct == (True, True, True, True)


def test_case_is_ignored() -> None:
    result = score("REVENUES,longtermdebt,sharePrice,GoodWill", GOLD)
    assert result.per_task is True


def test_comparison_is_positional_not_set_based() -> None:
    result = score("LongTermDebt,Revenues,SharePrice,Goodwill", GOLD)
    assert result.correct == (False, False, True, True)
    assert result.per_test_case == 0.5 and result.per_task is False


def test_missing_answers_count_wrong() -> None:
    result = score("Revenues,LongTermDebt,SharePrice", GOLD)
    assert result.correct == (True, True, True, False)
    assert result.num_answers == 3 and result.predicted[3] == ""
    assert result.per_test_case == 0.75 and result.per_task is False


def test_extra_answers_are_dropped() -> None:
    result = score("Revenues,LongTermDebt,SharePrice,Goodwill,Depreciation,Revenues", GOLD)
    assert result.correct == (True, True, True, True) and result.per_task is True
    assert result.num_answers == 6 and result.extra_answers == ("Depreciation", "Revenues")
    assert result.predicted == ("Revenues", "LongTermDebt", "SharePrice", "Goodwill")


def test_trailing_punctuation_and_numbering_break_a_match() -> None:
    result = score("1. Revenues,LongTermDebt,SharePrice,Goodwill.", GOLD)
    assert result.correct == (False, True, True, False)


def test_one_wrong_gives_three_quarters_and_fails_the_task() -> None:
    result = score("Revenues,LongTermDebt,SharePrice,Depreciation", GOLD)
    assert result.per_test_case == 0.75 and result.per_task is False


def test_empty_and_missing_answers_score_zero() -> None:
    for response in ("", "   ", "<think>still thinking"):
        result = score(response, GOLD)
        assert result.correct == (False,) * 4 and result.per_test_case == 0.0


def test_target_may_be_a_sequence_and_has_its_own_length() -> None:
    assert score("a,b", ["A", "B"]).per_task is True
    assert score("a", ("A", "B", "C")).correct == (True, False, False)
    assert gold_tags(" A , B ") == ("A", "B")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Revenues,LongTermDebt,SharePrice,Goodwill", (True, True, True, True)),
        ("Revenues,,SharePrice,Goodwill", (True, False, True, True)),
        (None, (False, False, False, False)),
        ("Revenues", (True, False, False, False)),
    ],
)
def test_compare_on_extracted_strings(answer: str | None, expected: tuple[bool, ...]) -> None:
    correct, aligned, count = compare(answer, GOLD)
    assert correct == expected and len(aligned) == 4
    assert count == (0 if answer is None else len(answer.split(",")))


def test_reasoning_model_output_is_scored_on_its_final_answer() -> None:
    response = (
        "<think>Q1 looks like Goodwill... no, it is revenue. Revenues,X,Y,Z</think>\n"
        "Here are the tags.\n<answer> revenues, LongTermDebt , SHAREPRICE,Goodwill </answer>"
    )
    assert score(response, GOLD).per_task is True

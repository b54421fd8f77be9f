"""Answer extraction from reasoning-model output: thinking, tags, JSON, boxed, phrases, last line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resd_envs.finer import extract_answer, score
from resd_envs.finer.extract import clean_answer

TAGS = "Revenues,LongTermDebt,SharePrice,Goodwill"


@pytest.mark.parametrize(
    ("response", "method"),
    [
        (TAGS, "tag_line"),
        (f"<answer>{TAGS}</answer>", "answer_tag"),
        (f"<think>Use <answer>Depreciation</answer> style.</think><answer>{TAGS}</answer>", "answer_tag"),
        (f"<answer>Depreciation</answer> then corrected: <answer>{TAGS}</answer>", "answer_tag"),
        (f"Final tags below\n<answer>{TAGS}", "answer_tag"),
        (f'{{"reasoning": "...", "bullet_ids": [], "final_answer": "{TAGS}"}}', "json"),
        (f'```json\n{{"reasoning": "r", "final_answer": "{TAGS}"}}\n```', "json"),
        ('Sure. {"final_answer": ["Revenues", "LongTermDebt", "SharePrice", "Goodwill"]} done', "json"),
        (f'reasoning text "final_answer": "{TAGS}", trailing', "json"),
        (f"so the result is \\boxed{{{TAGS}}}", "boxed"),
        (f"Thinking done. The final answer is: {TAGS}", "final_answer_phrase"),
        (f"Analysis of each entity...\nAnswer: {TAGS}\n", "label_line"),
        (f"**Tags:**\n{TAGS}\n", "label_line"),
        (f"Reasoning about the four entities.\n{TAGS}\nHope this helps!", "tag_line"),
        (f"<think>\nlong reasoning\n</think>\n\n{TAGS}\n", "tag_line"),
        (f"reasoning without an opening tag</think>{TAGS}", "tag_line"),
    ],
)
def test_answer_is_found(response: str, method: str) -> None:
    found = extract_answer(response)
    assert found.answer is not None
    assert [p.strip().lower() for p in found.answer.split(",")] == [t.lower() for t in TAGS.split(",")]
    assert found.method == method


def test_thinking_removed_flag() -> None:
    assert extract_answer(f"<think>x</think>{TAGS}").thinking_removed is True
    assert extract_answer(TAGS).thinking_removed is False


def test_unterminated_thinking_has_no_answer() -> None:
    found = extract_answer(f"<think>I guess {TAGS} but let me check again")
    assert found.answer is None and found.method == "unterminated_thinking"


def test_empty_response_has_no_answer() -> None:
    assert extract_answer("").answer is None and extract_answer("").method == "empty"
    assert extract_answer("<think>all of it</think>\n  \n").method == "empty"


def test_free_text_falls_back_to_the_last_line() -> None:
    found = extract_answer("I cannot tell.\nno idea at all")
    assert found.answer == "no idea at all" and found.method == "last_line"


def test_empty_answer_tag_is_an_empty_answer() -> None:
    found = extract_answer("<answer></answer>")
    assert found.answer == "" and found.method == "answer_tag"


@pytest.mark.parametrize(
    ("wrapped", "clean"),
    [
        (f"`{TAGS}`", TAGS),
        (f"**{TAGS}**", TAGS),
        (f'"{TAGS}"', TAGS),
        (f"```\n{TAGS}\n```", TAGS),
        ('["Revenues", "LongTermDebt"]', "Revenues,LongTermDebt"),
        ("[Revenues, LongTermDebt]", "Revenues,LongTermDebt"),
        ("Revenues.,Goodwill", "Revenues.,Goodwill"),
    ],
)
def test_clean_answer_peels_wrapping_only(wrapped: str, clean: str) -> None:
    assert clean_answer(wrapped) == clean


def test_huge_input_is_handled_quickly() -> None:
    noise = "{" * 5000 + "x " * 100_000
    found = extract_answer(noise + "\n" + TAGS)
    assert found.answer == TAGS


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_scored_without_error(text: str) -> None:
    result = score(text, TAGS)
    assert 0.0 <= result.per_test_case <= 1.0 and len(result.correct) == 4


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="<>{}[]`\"'*\\,", blacklist_categories=("Cs",)),
               max_size=200))
def test_gold_after_any_reasoning_is_found(reasoning: str) -> None:
    assert score(f"<think>{reasoning}</think>\n<answer>{TAGS}</answer>", TAGS).per_task
    assert score(f"{reasoning}\n<answer>{TAGS}</answer>", TAGS).per_task

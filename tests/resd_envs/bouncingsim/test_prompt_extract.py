"""The prompt states what the score depends on; extraction takes the last python block."""

from __future__ import annotations

from resd_envs.bouncingsim import load_scene
from resd_envs.bouncingsim.extract import extract_program
from resd_envs.bouncingsim.prompt import build_prompt
from resd_envs.bouncingsim.tasks import load_rows


def test_prompt_states_the_hidden_facts() -> None:
    row = load_rows("medium", "test")[0]
    text = build_prompt(load_scene(row["scene"]))
    for fact in (
        "circumradius",
        "orientation stays 0",
        "vertex 0",
        "mass",
        "density 1",
        "predict_position(t)",
        "```python",
        f"list of {row['n_balls']} pairs",
        "mean over balls",
        "50",
    ):
        assert fact in text, fact
    for ball in row["scene"]["balls"]:
        assert f"({ball['position'][0]}, {ball['position'][1]})" in text
    assert "0.1, 0.2" not in text and "1.5 s" not in text  # test times are not revealed


def test_prompt_mentions_two_sided_walls_only_with_several_containers() -> None:
    from resd_envs.bouncingsim.tasks import presets

    assert "two-sided" in build_prompt(load_scene(presets()["F_easy"]))
    assert "two-sided" not in build_prompt(load_scene(presets()["G_easy"]))
    assert "sin(t)" in build_prompt(load_scene(presets()["B_extreme"]))


def test_extract_last_python_block() -> None:
    text = "```python\nA = 1\n```\nthen\n```py\nB = 2\n```\n```text\nnot code\n```"
    assert extract_program(text) == "B = 2"
    assert extract_program("```\nC = 3\n```") == "C = 3"
    assert extract_program("no fences here") is None
    assert extract_program("```python\n   \n```") is None
    assert extract_program("```python\nunterminated") is None
    assert extract_program(None) is None  # type: ignore[arg-type]

"""Program extraction from full model responses (spec §3), including reasoning-model output."""

from __future__ import annotations

import pytest

import resd_envs
from resd_envs import manufactoria as mf

PROGRAM = "START start:\n    NEXT r\n\nPULLER_RB r:\n    [R] end\n\nEND end"
WRONG = "START start:\n    NEXT end\n\nEND end"


@pytest.mark.parametrize(
    "response, expected",
    [
        (f"```manufactoria\n{PROGRAM}\n```", PROGRAM),
        (f"Here you go:\n```\n{PROGRAM}\n```\nDone.", PROGRAM),
        (f"```manufactoria {PROGRAM}```", PROGRAM),  # code on the fence line
        (f"<think>draft:\n```manufactoria\n{WRONG}\n```\nhmm</think>\nFinal:\n```manufactoria\n{PROGRAM}\n```", PROGRAM),
        (f"```manufactoria\n{PROGRAM}\n```\nAlternative:\n```manufactoria\n{WRONG}\n```", WRONG),  # last block wins
        (f"```python\n{PROGRAM}\n```", f"python\n{PROGRAM}"),
        (f"```Manufactoria\n{PROGRAM}\n```", f"Manufactoria\n{PROGRAM}"),
        (f"``` manufactoria\n{PROGRAM}\n```", f"manufactoria\n{PROGRAM}"),
        (PROGRAM, PROGRAM),  # no fence: the whole response
        (f"```manufactoria\n{PROGRAM}", f"```manufactoria\n{PROGRAM}"),  # unclosed fence: no match
        ("", ""),
    ],
)
def test_extract_program(response: str, expected: str) -> None:
    assert mf.extract_program(response) == expected


@pytest.mark.parametrize(
    "response, reward",
    [
        (f"```manufactoria\n{PROGRAM}\n```", 1.0),
        (f"```manufactoria START start:\n    NEXT r\nPULLER_RB r:\n    [R] end\nEND end\n```", 1.0),
        (f"```\n{PROGRAM}\n```", 1.0),
        (PROGRAM, 1.0),
        (f"```\n{PROGRAM}\n```\n", 1.0),
        (f"```python\n{PROGRAM}\n```", 0.0),
        (f"``` manufactoria\n{PROGRAM}\n```", 0.0),
        (f"```manufactoria\n{PROGRAM}\n```\nOr:\n```manufactoria\n{WRONG}\n```", 0.0),
        (f"<think>```manufactoria\n{WRONG}\n```</think>\n```manufactoria\n{PROGRAM}\n```", 1.0),
        (f"Use ``` fences. ```manufactoria\n{PROGRAM}\n```", 0.0),  # a stray inline fence shifts the pairing
        (f"```manufactoria\n{PROGRAM}", 0.0),  # unclosed: the whole text is parsed and the tag line fails
        ("", 0.0),
    ],
)
def test_reward_follows_extraction(response: str, reward: float) -> None:
    """A toy task whose predicate is 'first symbol is R' shows the extracted program is what gets scored."""
    fam = resd_envs.family("resd/Manufactoria-Has-v0")
    task = {"task_id": "toy", "tests": [{"id": "t0", "tape": "RB", "accept": True}, {"id": "t1", "tape": "B", "accept": False}]}
    assert fam.evaluate(task, response).reward("binary") == reward


def test_extract_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        mf.extract_program(None)  # type: ignore[arg-type]

"""Fixtures for the context-updater tests: a scripted fake ``generate`` and sample builders."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resd_learner.context import SampleView


def prompt_kind(messages: list[dict[str, str]]) -> str:
    """Which of our prompts a message list is (by a section label only that template has)."""
    text = messages[-1]["content"]
    if "=== CHECKER FEEDBACK ===" in text:
        return "reflect"
    if "=== ACCEPTED ATTEMPT ===" in text:
        return "success"
    if "=== PLAYBOOK STATISTICS ===" in text:
        return "curate"
    raise AssertionError(f"unrecognised prompt: {text[:120]!r}")


class ScriptedGenerate:
    """Fake ``generate``: ``script(kind, messages) -> str`` answers each prompt; every call is recorded."""

    def __init__(self, script: Callable[[str, list[dict[str, str]]], str]):
        self.script = script
        self.calls: list[tuple[str, int]] = []  # (kind of the batch, batch size)
        self.prompts: list[list[list[dict[str, str]]]] = []

    def __call__(self, batch: list[list[dict[str, str]]]) -> list[str]:
        kinds = {prompt_kind(m) for m in batch}
        assert len(kinds) == 1, f"one generate call mixed prompt kinds {kinds}"
        self.calls.append((kinds.pop(), len(batch)))
        self.prompts.append(batch)
        return [self.script(prompt_kind(m), m) for m in batch]


def sample(
    example_id: str,
    *,
    success: bool = False,
    response: str = "answer",
    feedback: str = "wrong",
    group_index: int = 0,
    prompt: str | None = None,
) -> SampleView:
    return SampleView(
        example_id=example_id,
        group_index=group_index,
        prompt=prompt or f"Solve TASKID={example_id} now.",
        response=response,
        reward=1.0 if success else 0.0,
        success=success,
        feedback="" if success else feedback,
    )


@pytest.fixture
def make_sample():
    return sample


@pytest.fixture
def scripted():
    """The :class:`ScriptedGenerate` class (tests build one per script)."""
    return ScriptedGenerate

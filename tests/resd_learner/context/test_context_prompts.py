"""Context prompts in both layouts (``context.prompt_layout``).

``official`` keeps the official order (the sample's sections, then the playbook, then the reply
format) and the exact text the quickstart was measured with; ``shared_first`` puts what every call
of a step shares (instructions, reply format, playbook snapshot) first, so that a prefix-caching
engine computes it once per step.
"""

from __future__ import annotations

import os

import pytest

from resd_learner.context import ContextConfig, SampleView
from resd_learner.context.config import PROMPT_LAYOUTS
from resd_learner.context.curate import curator_messages
from resd_learner.context.playbook import Playbook
from resd_learner.context.prompts.curator import CURATOR_FORMAT, CURATOR_TEMPLATES
from resd_learner.context.prompts.reflector import REFLECTOR_FORMAT, REFLECTOR_TEMPLATES
from resd_learner.context.prompts.success_tagger import SUCCESS_TAGGER_FORMAT, SUCCESS_TAGGER_TEMPLATES
from resd_learner.context.reflect import reflector_messages, success_tagger_messages

KINDS = ("reflector", "success_tagger", "curator")
FORMATS = {"reflector": REFLECTOR_FORMAT, "success_tagger": SUCCESS_TAGGER_FORMAT, "curator": CURATOR_FORMAT}
TEMPLATES = {"reflector": REFLECTOR_TEMPLATES, "success_tagger": SUCCESS_TAGGER_TEMPLATES, "curator": CURATOR_TEMPLATES}
FIRST_SAMPLE_SECTION = {"reflector": "=== TASK ===", "success_tagger": "=== TASK ===", "curator": "=== REFLECTION ==="}


def _samples() -> tuple[SampleView, SampleView]:
    return tuple(
        SampleView(example_id=f"task-{word}", group_index=0, prompt=f"{word}: tag the amount in this sentence.",
                   response=f"<answer>{word}Tag</answer>", reward=0.0, success=False, feedback=f"Wrong tag {word}Tag.")
        for word in ("Alpha", "Beta")  # the two samples differ from their first character
    )


def _playbook() -> Playbook:
    playbook = Playbook()
    playbook.add("common_mistakes_to_avoid", "Name one of the listed candidates, spelled exactly.", step=1, update=0)
    return playbook


def _contents(kind: str, layout: str) -> tuple[str, str, str]:
    """The two samples' prompts of ``kind`` in ``layout`` on one playbook, and that playbook's text."""
    playbook = _playbook()
    text = playbook.render()
    builders = {
        "reflector": lambda s: reflector_messages(s, text, max_slot_chars=1000, layout=layout),
        "success_tagger": lambda s: success_tagger_messages(s, text, max_slot_chars=1000, layout=layout),
        "curator": lambda s: curator_messages(f"{s.prompt.split(':')[0]}, a reflection", s, playbook,
                                              playbook_text=text, max_slot_chars=1000, layout=layout),
    }
    first, second = (builders[kind](s)[-1]["content"] for s in _samples())
    return first, second, text


def _shared_prefix(a: str, b: str) -> str:
    return a[:len(os.path.commonprefix([a, b]))]


@pytest.mark.parametrize("kind", KINDS)
def test_shared_first_puts_format_and_playbook_before_the_sample(kind):
    first, second, playbook_text = _contents(kind, "shared_first")
    shared = _shared_prefix(first, second)
    assert FORMATS[kind].format() in shared  # the reply format, its doubled braces filled in
    assert playbook_text in shared and "Name one of the listed candidates" in shared
    assert shared.rstrip().endswith(FIRST_SAMPLE_SECTION[kind])  # the prompts part where the sample starts
    assert all(sample.prompt not in shared for sample in _samples())
    assert first.rstrip().endswith("Now write the JSON object described above for this "
                                   + ("reflection." if kind == "curator" else "attempt."))


@pytest.mark.parametrize("kind", KINDS)
def test_official_gives_the_sample_first_and_closes_with_the_reply_format(kind):
    first, second, playbook_text = _contents(kind, "official")
    shared = _shared_prefix(first, second)
    assert playbook_text not in shared and FORMATS[kind].format() not in shared
    assert first.endswith(FORMATS[kind].format()) and second.endswith(FORMATS[kind].format())
    own = "Alpha, a reflection" if kind == "curator" else "Alpha: tag the amount"  # the sample's first section
    assert first.index(own) < first.index("Name one of the listed candidates")


@pytest.mark.parametrize("kind", KINDS)
def test_both_layouts_hold_the_same_sections(kind):
    official, shared_first = TEMPLATES[kind]["official"], TEMPLATES[kind]["shared_first"]
    lines = {line for line in official.splitlines() if line}
    assert lines <= {line for line in shared_first.splitlines() if line}  # only the order and a reminder differ
    assert len(shared_first) - len(official) < 80


def test_an_unknown_layout_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"prompt_layout='shared'.*'official', 'shared_first'"):
        ContextConfig(prompt_layout="shared")


@pytest.mark.parametrize("kind", KINDS)
def test_every_configurable_layout_has_a_template_and_an_unknown_one_is_a_clear_error(kind):
    assert set(TEMPLATES[kind]) == set(PROMPT_LAYOUTS)
    sample = _samples()[0]
    builders = {
        "reflector": lambda: reflector_messages(sample, "", max_slot_chars=1000, layout="sharedfirst"),
        "success_tagger": lambda: success_tagger_messages(sample, "", max_slot_chars=1000, layout="sharedfirst"),
        "curator": lambda: curator_messages("a reflection", sample, Playbook(), playbook_text="",
                                            max_slot_chars=1000, layout="sharedfirst"),
    }
    with pytest.raises(ValueError, match=r"unknown prompt layout 'sharedfirst'; use one of \['official', 'shared_first'\]"):
        builders[kind]()

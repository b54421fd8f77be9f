"""benchmarks/context_prompt_probe.py: its prompt variants keep the shipped instructions and fill like them."""

from __future__ import annotations

import pytest

from resd_learner.context.prompts import curator, reflector

SLOTS = {"prompt": "TASK-TEXT", "response": "ATTEMPT-TEXT", "feedback": "FEEDBACK-TEXT", "playbook": "PLAYBOOK-TEXT",
         "stats": "{}", "reflection": "REFLECTION-TEXT", "sections": "- others"}


@pytest.fixture(scope="module")
def probe(load_benchmark):
    return load_benchmark("context_prompt_probe")


@pytest.mark.parametrize("variant", ["keys_only", "worked_example"])
def test_variants_replace_only_the_format_block(probe, variant):
    reflector_text, curator_text = probe.variant_templates(variant)
    blocks = {"keys_only": (probe.KEYS_ONLY_REFLECTOR, probe.KEYS_ONLY_CURATOR),
              "worked_example": (probe.WORKED_REFLECTOR, probe.WORKED_CURATOR)}[variant]
    cases = ((reflector_text, reflector.REFLECTOR_TEMPLATE, reflector.REFLECTOR_FORMAT, blocks[0], ("ATTEMPT-TEXT", "FEEDBACK-TEXT")),
             (curator_text, curator.CURATOR_TEMPLATE, curator.CURATOR_FORMAT, blocks[1], ("REFLECTION-TEXT", "TASK-TEXT")))
    for variant_text, shipped, shipped_block, block, slots in cases:
        assert shipped_block not in variant_text and variant_text.count(block) == 1
        assert variant_text.replace(block, shipped_block) == shipped  # everything else is the shipped prompt
        filled = variant_text.format(**SLOTS)
        assert all(slot in filled for slot in slots) and "{{" not in filled


def test_official_variant_is_the_shipped_prompts_and_unknown_ones_are_refused(probe):
    for variant in ("official", "extractive"):  # extractive changes the schema, not the prompts
        assert probe.variant_templates(variant) == (reflector.REFLECTOR_TEMPLATE, curator.CURATOR_TEMPLATE)
    with pytest.raises(ValueError, match="unknown variant"):
        probe.variant_templates("few_shot")


def test_a_run_directory_without_records_is_reported(probe, tmp_path):
    with pytest.raises(FileNotFoundError, match="per-step records"):
        probe.recorded_rollouts(tmp_path, 1)

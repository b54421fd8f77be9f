"""The shared-prefix helpers: prefix length and which models may reuse a prefix's keys/values."""

from __future__ import annotations

import pytest

from resd_learner.shared_prefix import MIN_SHARED_PREFIX, shared_prefix_length, supports_shared_prefix


def test_prefix_is_the_longest_common_start():
    head = list(range(100, 120))
    sequences = [head + [1, 2, 3], head + [1, 9], head + [4]]
    assert shared_prefix_length(sequences, [22, 21, 20]) == 20


def test_prefix_stops_before_the_first_needed_position():
    same = list(range(30))
    # identical sequences (two rollouts with the same teacher prompt and response) share everything,
    # but the hidden state at position 12 is needed, so the prefix ends there
    assert shared_prefix_length([same, list(same)], [12, 25]) == 12


def test_short_or_single_prefixes_are_not_shared():
    assert shared_prefix_length([list(range(40))], [30]) == 0
    short = list(range(MIN_SHARED_PREFIX - 1))
    assert shared_prefix_length([short + [1], short + [2]], [9, 9]) == 0
    assert shared_prefix_length([[1, 2], [3, 4]], [1, 1]) == 0


def test_prefix_needs_one_position_per_sequence():
    with pytest.raises(ValueError, match="one first-needed position per sequence"):
        shared_prefix_length([[1, 2], [1, 2]], [1])


def test_only_full_attention_models_share_a_prefix():
    from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    assert supports_shared_prefix(LlamaConfig())
    assert supports_shared_prefix(Qwen2Config(use_sliding_window=False))
    assert supports_shared_prefix(Qwen3Config())
    assert not supports_shared_prefix(MistralConfig(sliding_window=4096))
    assert not supports_shared_prefix(Qwen2Config(use_sliding_window=True, sliding_window=64, max_window_layers=0))

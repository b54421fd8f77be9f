"""benchmarks/generation_profile.py: profiled time lands in its kernel bucket; bad counts are refused."""

from __future__ import annotations

import cProfile

import pytest
import torch


@pytest.fixture(scope="module")
def profile_script(load_benchmark):
    return load_benchmark("generation_profile")


def test_buckets_put_a_torch_sort_and_topk_under_top_p_and_python_work_under_other(profile_script):
    logits = torch.randn(64, 49152)

    def python_work() -> int:
        return sum(i * i for i in range(300_000))

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(3):
        logits.sort(dim=-1)
    python_work()
    profile.disable()
    buckets = profile_script._buckets(profile)
    assert set(buckets) == {*profile_script.KERNELS.values(), "other"}
    assert buckets["top-p filter (sampler)"] > 0 and buckets["other"] > 0

    only_topk = cProfile.Profile()
    only_topk.enable()
    for _ in range(3):
        logits.topk(256, dim=-1)
    only_topk.disable()
    assert profile_script._buckets(only_topk)["top-p filter (sampler)"] > 0
    assert buckets["matrix multiplies (oneDNN)"] == 0 and buckets["attention"] == 0


@pytest.mark.parametrize("argv", [["--prompts", "0"], ["--reflections", "0"]])
def test_counts_below_one_are_refused_before_anything_loads(profile_script, argv, capsys):
    with pytest.raises(SystemExit):
        profile_script.main(argv)
    assert "at least 1" in capsys.readouterr().err


def test_reflections_take_the_first_failed_sample_of_each_task_in_order(profile_script):
    from types import SimpleNamespace

    def sample(task: str, index: int):
        return SimpleNamespace(task=SimpleNamespace(example_id=task), group_index=index)

    samples = [sample("a", 0), sample("a", 1), sample("b", 2), sample("a", 3), sample("c", 0), sample("b", 1)]
    picked = profile_script._one_per_task(samples)
    assert [(s.task.example_id, s.group_index) for s in picked] == [("a", 0), ("b", 2), ("c", 0)]


def test_common_prefix_length_counts_the_leading_ids_all_sequences_share(profile_script):
    assert profile_script._common_prefix_length([[1, 2, 3, 4], [1, 2, 9], [1, 2, 3]]) == 2
    assert profile_script._common_prefix_length([[5, 6], [5, 6, 7]]) == 2  # one is a prefix of the other
    assert profile_script._common_prefix_length([[1], [2]]) == 0


def test_read_playbook_returns_a_saved_playbook_and_its_ids_in_order(profile_script, tmp_path):
    from resd_learner.context.playbook import Playbook

    playbook = Playbook()
    first = playbook.add("common_mistakes_to_avoid", "An amount of money needs a money-amount tag", step=1, update=0)
    second = playbook.add("strategies_and_insights", "Copy the tag exactly", step=1, update=0)
    playbook.tag(first.id, "helpful", update=1)
    path = tmp_path / "playbook_000001.md"
    path.write_text(playbook.render(), encoding="utf-8")
    text, ids = profile_script.read_playbook(str(path))
    assert text == playbook.render()
    assert ids == [second.id, first.id]  # rendered section by section: strategies before common mistakes
    assert profile_script.read_playbook(None) == ("", [])


def test_read_playbook_refuses_a_missing_file_one_without_entries_or_binary_bytes(profile_script, tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        profile_script.read_playbook(str(tmp_path / "absent.md"))
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\nnothing here\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no entry line"):
        profile_script.read_playbook(str(notes))
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\x80\xff\x00 not text")
    with pytest.raises(SystemExit, match="not UTF-8 text"):
        profile_script.read_playbook(str(binary))

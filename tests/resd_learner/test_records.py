"""Run records (resd_learner.records) and what resd-report makes of them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from resd_learner import report
from resd_learner.records import (
    RunRecords,
    collect_step_records,
    feedback_head,
    read_records,
    read_validations,
    step_file,
    val_file,
    validation_outcomes,
)
from resd_learner.selection import select_checkpoint
from resd_learner.types import Score, Task


def _sample(example_id, reward, response, feedback="", group_index=0):
    task = Task(example_id=example_id, messages=({"role": "user", "content": "q"},), prompt="q", index=0)
    return SimpleNamespace(task=task, group_index=group_index, response_text=response, response_ids=[1, 2, 3],
                           finish_reason="stop", score=Score(reward=reward, score=reward, passed=reward == 1.0,
                                                             feedback=feedback))


class _Tok:
    def decode(self, ids, skip_special_tokens=False):
        return " ".join(f"t{i}" for i in ids)


def _update(example_id, entry_id):
    outputs = [
        {"kind": "reflection", "example_id": example_id, "group_index": 0, "text": "forgot the end", "error": ""},
        {"kind": "curation", "example_id": example_id, "group_index": 0, "text": "{...}", "error": "",
         "operations": [{"section": "common_mistakes_to_avoid", "content": "Check the end."}], "added": [entry_id]},
    ]
    return SimpleNamespace(outputs=outputs, playbook=f"## Mistakes\n[{entry_id}] helpful=0 harmful=0 :: Check the end.")


def _write_two_steps(run: Path) -> None:
    records = RunRecords(run)
    first = [_sample("p1", 0.0, "wrong answer", "test 2 failed"), _sample("p2", 1.0, "right")]
    items = [SimpleNamespace(teacher_ids=[5, 6, 7, 8], teacher_start=2, sections=("prompt", "reflection"),
                             distill=True, skip_reason="", weight=0.5)]
    update = _update("p1", "mis-00001")
    records.write_step(1, collect_step_records(first, update, items, first[::2], _Tok()), playbook=update.playbook)
    second = [_sample("p1", 1.0, "better answer")]
    records.write_step(2, collect_step_records(second, None, [], [], _Tok()), playbook=None)


def test_records_round_trip(tmp_path):
    _write_two_steps(tmp_path)
    steps = read_records(tmp_path)
    assert [s.step for s in steps] == [1, 2]
    first = steps[0]
    assert [(r["example_id"], r["reward"], r["feedback"]) for r in first.rollouts] == [
        ("p1", 0.0, "test 2 failed"), ("p2", 1.0, "")]
    assert [c["kind"] for c in first.context] == ["reflection", "curation"]
    assert first.teacher_prompts[0]["text"] == "t5 t6" and first.teacher_prompts[0]["weight"] == 0.5
    assert "mis-00001" in first.playbook and steps[1].playbook is None
    with gzip.open(step_file(tmp_path, 1), "rt") as handle:
        assert all(json.loads(line)["type"] for line in handle)
    with pytest.raises(ValueError, match="type"):
        RunRecords(tmp_path).write_step(3, [{"type": "mystery"}])
    step_file(tmp_path, 4).write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="step_000004"):
        read_records(tmp_path)


def test_worked_example_links_failure_reflection_entry_and_next_attempt(tmp_path):
    _write_two_steps(tmp_path)
    (example,) = report.worked_examples(read_records(tmp_path))
    assert (example.step, example.example_id, example.reward, example.reflection) == (1, "p1", 0.0, "forgot the end")
    assert example.entries == [("mis-00001", "helpful=0 harmful=0 :: Check the end.")]
    assert (example.next_step, example.next_response, example.next_reward) == (2, "better answer", 1.0)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "kind": "train", "loss/distill": 1.0}) + "\n")
    result = report.write_report(tmp_path)
    index = (result.out_dir / "index.md").read_text()
    assert "## Worked examples" in index and "better answer" in index and "forgot the end" in index
    assert "Check the end." in (result.out_dir / "index.html").read_text()


def test_empty_panels_are_dropped():
    assert report._split_scales({"a": ([], [])}) == []
    assert report._split_scales({"a": ([1], [0.0]), "b": ([1], [0.0])}) == [{"a": ([1], [0.0]), "b": ([1], [0.0])}]
    panels = report._split_scales({"a": ([1], [100.0]), "b": ([1], [1.0]), "c": ([], [])})
    assert [sorted(p) for p in panels] == [["a"], ["b"]]


def test_selection_table_marks_ties_and_unsaved_steps(tmp_path):
    rows = [{"step": s, "kind": "val", "val/mean@4/per_task": v, "val/best@4/per_task": v,
             "val/mean@4/per_test_case": v, "val/best@4/per_test_case": v}
            for s, v in ((1, 0.1), (2, 0.5), (3, 0.5))]
    selection = select_checkpoint(rows, saved_steps={1: tmp_path / "step_1"})
    table = report.selection_table(selection)
    lines = table.splitlines()
    assert "tie" in lines[2] and "tie" in lines[3] and "tie" not in lines[1]
    assert "not saved" in lines[2] and lines[1].endswith("saved") and "not saved" not in lines[1]
    assert "selected step 2 (no checkpoint saved at that step); the best step with a checkpoint is 1" in table


def test_records_folder_appears_with_the_first_step_and_marks_a_run(tmp_path) -> None:
    from resd_learner.checkpoint import check_new_run_dir, holds_run
    from resd_learner.records import RunRecords

    records = RunRecords(tmp_path / "run")
    assert not (tmp_path / "run").exists()  # the new-run guard sees the directory as the user left it
    records.write_step(1, [], playbook="")
    assert holds_run(tmp_path / "run")
    assert check_new_run_dir(tmp_path / "run", overwrite=True) is True


def _write_two_validations(run: Path) -> None:
    records = RunRecords(run)
    records.write_validation(0, [_sample("v1", 0.0, "<answer>Nope</answer>", "No answer read: name one tag"),
                                 _sample("v1", 0.0, "<answer>B</answer>", "Wrong: B is not the right tag for \"9\"."),
                                 _sample("v2", 1.0, "<answer>A</answer>", "Correct.")])
    records.write_validation(8, [_sample("v1", 1.0, "<answer>A</answer>"), _sample("v1", 1.0, "<answer>A</answer>"),
                                 _sample("v2", 0.0, "<answer>B</answer>", "Wrong: B | C is not right")])


def test_validation_replies_round_trip_and_count_by_feedback_head(tmp_path):
    _write_two_validations(tmp_path)
    validations = read_validations(tmp_path)
    assert sorted(validations) == [0, 8]
    assert [r["response"] for r in validations[0]] == ["<answer>Nope</answer>", "<answer>B</answer>", "<answer>A</answer>"]
    assert {r["type"] for rows in validations.values() for r in rows} == {"validation"}
    assert read_records(tmp_path) == []  # validation files are not training steps
    outcomes = validation_outcomes(validations)
    assert outcomes[0] == {"No answer read": 1, "Wrong": 1, "passed": 1}
    assert outcomes[8] == {"passed": 2, "Wrong": 1}
    val_file(tmp_path, 8).write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="val_000008"):
        read_validations(tmp_path)


def test_feedback_head_names_the_outcome_kind():
    assert feedback_head({"passed": True, "feedback": "Wrong: x"}) == "passed"
    assert feedback_head({"passed": False, "feedback": ""}) == "(no feedback)"
    assert feedback_head({"passed": False, "feedback": "Test 3 failed. Expected 4"}) == "Test 3 failed"
    long = feedback_head({"passed": False, "feedback": "x" * 100})
    assert len(long) == 40 and long.endswith("...")


def test_report_tabulates_validation_outcomes_per_step(tmp_path):
    _write_two_validations(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "kind": "train", "loss/distill": 1.0}) + "\n")
    result = report.write_report(tmp_path)
    index = (result.out_dir / "index.md").read_text()
    assert "| outcome | step 0 | step 8 |" in index
    assert "| passed | 1 (33 %) | 2 (67 %) |" in index
    assert "| No answer read | 1 (33 %) | 0 (0 %) |" in index
    assert "| replies | 3 | 3 |" in index
    page = (result.out_dir / "index.html").read_text()
    assert "<td>No answer read</td><td>1 (33 %)</td><td>0 (0 %)</td>" in page

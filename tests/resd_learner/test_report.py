"""Tests of resd-report on a synthetic run directory written by the test."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from resd_learner import report


def _write_run(run, *, with_history=True):
    run.mkdir(parents=True)
    rows = []
    for step in range(1, 13):
        rows.append({
            "step": step, "kind": "train",
            "rollout/reward_mean": step / 12, "rollout/success_rate": step / 24,
            "loss/distill": 1.0 / step, "loss/divergence": 0.5 / step,
            "context/playbook_size": min(step * 3, 20), "context/reflections": 4, "context/entries_added": 3,
            "time/rollout_s": 10.0, "time/context_s": 4.0, "time/teacher_s": 1.0, "time/loss_s": 0.5,
            "time/optim_s": 0.2, "time/step_s": 15.7,
        })
        if step % 4 == 0:
            rows.append({"step": step, "kind": "val", "val/mean@4/per_task": 0.1 * step, "val/best@4/per_task": 0.2,
                         "val/mean@4/per_test_case": 0.3, "val/best@4/per_test_case": 0.05 * step})
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    if with_history:
        events = [
            {"step": 1, "event": "add", "entry_id": "err-00001", "section": "common_mistakes_to_avoid",
             "content": "Never use <script> & | pipes", "reflection": "The program <b>failed</b>\nbecause of `x`."},
            {"step": 2, "event": "tag", "entry_id": "err-00001", "section": "common_mistakes_to_avoid",
             "content": "Never use <script> & | pipes", "tag": "helpful", "helpful": 1, "harmful": 0},
            {"step": 5, "event": "remove", "entry_id": "err-00001", "section": "common_mistakes_to_avoid",
             "content": "Never use <script> & | pipes", "reason": "concise:staleness"},
        ]
        (run / "playbook_history.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")


def test_report_writes_figures_and_history(tmp_path):
    run = tmp_path / "run"
    _write_run(run)
    result = report.write_report(run)
    names = sorted(p.name for p in result.figures)
    assert names == ["loss.png", "playbook.png", "playbook_top_entries.png", "reward.png", "timings.png",
                     "val_metrics.png"]
    for path in result.figures:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size[0] >= 800 and img.size[1] >= 300
    md = (result.out_dir / "playbook_history.md").read_text()
    assert "## Step 1" in md and "**added** `err-00001`" in md
    assert "tagged helpful" in md and "helpful=1, harmful=0" in md
    assert "removed** `err-00001` (concise:staleness)" in md
    assert "> The program <b>failed</b>" in md  # the reflection is quoted
    assert "\\|" in md  # pipes neutralised for the table
    page = (result.out_dir / "playbook_history.html").read_text()
    assert "<script>" not in page and "&lt;script&gt; &amp;" in page
    assert "&lt;b&gt;failed&lt;/b&gt;" in page
    index = (result.out_dir / "index.md").read_text()
    assert "selected step 12" in index and "![val_metrics](val_metrics.png)" in index


def test_report_without_history_and_bad_lines(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run, with_history=False)
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write("{broken\n")
    assert report.main([str(run), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable line" in out and "no playbook_history.jsonl" in out
    assert "No playbook events" in (tmp_path / "out" / "playbook_history.md").read_text()


def test_report_errors(tmp_path, capsys):
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert report.main([str(tmp_path)]) == 2
    assert "neither metrics.jsonl" in capsys.readouterr().err


def test_series_and_entry_lives():
    rows = [{"step": 2, "kind": "train", "loss/x": 2.0}, {"step": 1, "kind": "train", "loss/x": 1.0, "loss/flag": True},
            {"step": 2, "kind": "train", "loss/x": 3.0}, {"step": 3, "kind": "train", "loss/x": float("inf")}]
    assert report.series(rows, "train", ("loss/",)) == {"loss/x": ([1, 2], [1.0, 3.0])}
    lives = report.entry_lives([
        {"step": 1, "event": "add", "entry_id": "a", "section": "s", "content": "c"},
        {"step": 3, "event": "tag", "entry_id": "a", "tag": "harmful", "helpful": 0, "harmful": 2},
    ])
    assert len(lives) == 1 and lives[0].added_step == 1 and lives[0].harmful == 2 and lives[0].removed_step is None


@pytest.mark.parametrize("peaks,panels", [((1.0, 0.9), 1), ((100.0, 1.0), 2)])
def test_scale_split(peaks, panels):
    data = {f"k{i}": ([1], [p]) for i, p in enumerate(peaks)}
    assert len(report._split_scales(data)) == panels

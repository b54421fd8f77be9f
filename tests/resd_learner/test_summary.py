"""End-of-run summary: per-prompt validation records, the paired bootstrap and the printed lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from resd_learner.summary import (
    VAL_SCORES_FILE,
    format_summary,
    paired_bootstrap,
    print_run_summary,
    record_val_scores,
    summarize_run,
)


def test_paired_bootstrap_brackets_a_clear_gain_and_is_seeded() -> None:
    start = [0.0, 0.25, 0.5, 0.0] * 10
    end = [s + 0.25 for s in start]
    change, low, high = paired_bootstrap(start, end)
    assert change == pytest.approx(0.25) and low == pytest.approx(0.25) and high == pytest.approx(0.25)
    noisy_end = [0.5, 0.0, 0.75, 0.25] * 10
    assert paired_bootstrap(start, noisy_end, seed=1) == paired_bootstrap(start, noisy_end, seed=1)
    change, low, high = paired_bootstrap(start, noisy_end)
    assert low < change < high


def test_paired_bootstrap_rejects_unpaired_input() -> None:
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap([], [])


def test_record_val_scores_appends_per_prompt_means(tmp_path: Path) -> None:
    record_val_scores(tmp_path, 0, ["a", "b"], [[1.0, 0.0], [0.0, 0.0]])
    record_val_scores(tmp_path, 4, ["a", "b"], [[1.0, 1.0], [0.5, 0.0]])
    lines = [json.loads(x) for x in (tmp_path / VAL_SCORES_FILE).read_text().splitlines()]
    assert [line["mean_at_n"] for line in lines] == [[0.5, 0.0], [1.0, 0.25]]
    assert lines[1]["step"] == 4 and lines[1]["n"] == 2
    with pytest.raises(ValueError, match="one per prompt"):
        record_val_scores(tmp_path, 5, ["a"], [[1.0], [0.0]])


def _write_run(root: Path) -> None:
    record_val_scores(root, 0, ["a", "b", "c"], [[0.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    record_val_scores(root, 8, ["a", "b", "c"], [[1.0, 0.0], [1.0, 0.5], [0.0, 1.0]])
    train = [
        {"step": 1, "kind": "train", "context/reflections": 4, "context/reflections_malformed": 1,
         "context/curations_applied": 1, "context/curations_failed": 0, "context/playbook_size": 2},
        {"step": 2, "kind": "train", "context/reflections": 4, "context/reflections_malformed": 0,
         "context/curations_applied": 0, "context/curations_failed": 1, "context/playbook_size": 3},
        {"step": 2, "kind": "val", "val/per_test_case/mean@2": 0.5},
    ]
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train) + '{"cut', encoding="utf-8")


def test_summary_reads_first_and_last_validation_and_context_totals(tmp_path: Path, capsys) -> None:
    _write_run(tmp_path)
    summary = summarize_run(tmp_path, minutes=3.5)
    assert summary.start_score == pytest.approx(1 / 3) and summary.end_score == pytest.approx(7 / 12)
    assert summary.change == pytest.approx(0.25) and summary.ci_low <= summary.change <= summary.ci_high
    assert (summary.playbook_size, summary.reflections, summary.reflections_malformed) == (3, 8, 1)
    assert summary.curation_parse_rate == 0.5
    text = format_summary(summary)
    assert "0.333 (step 0) -> 0.583 (step 8)" in text and "paired bootstrap CI" in text
    assert "playbook: 3 entries" in text and "reflections parsed: 7/8 (88%)" in text and "3.5 min" in text
    print_run_summary(tmp_path)
    assert "resd run summary" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text())["end_score"] == pytest.approx(7 / 12)


def test_summary_without_validation_says_so(tmp_path: Path) -> None:
    text = format_summary(summarize_run(tmp_path))
    assert "no validation was recorded" in text


def test_summary_counts_echoed_reflections_and_says_when_the_curator_was_never_called(tmp_path: Path) -> None:
    record_val_scores(tmp_path, 0, ["a"], [[0.0]])
    record_val_scores(tmp_path, 8, ["a"], [[1.0]])
    step = {"kind": "train", "context/reflections": 5, "context/reflections_malformed": 0, "context/reflections_echo": 4,
            "context/curations_applied": 0, "context/curations_failed": 0, "context/playbook_size": 0}
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, **step}) + "\n" for s in (1, 2)), encoding="utf-8")
    summary = summarize_run(tmp_path)
    assert summary.reflections_echo == 8 and summary.curation_parse_rate is None
    assert "reflections parsed: 10/10 (100%), 8 of them dropped as echoes of the prompt's format example; no curator call" \
        in format_summary(summary)
    assert json.loads(json.dumps(summary.as_dict()))["reflections_echo"] == 8


def test_wall_time_counts_from_the_package_import_not_the_process_creation(monkeypatch) -> None:
    import resd_learner
    from resd_learner.summary import process_minutes

    monkeypatch.setattr(resd_learner, "STARTED_AT", time.time() - 90.0)
    assert 1.49 < process_minutes() < 1.6
    monkeypatch.setattr(resd_learner, "STARTED_AT", time.time())
    assert process_minutes() < 0.05

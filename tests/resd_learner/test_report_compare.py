"""resd-report --compare: runs grouped by method, curves on shared axes, the summary table."""

from __future__ import annotations

import json

from resd_learner.report import main
from resd_learner.report_compare import group_of, pooled_table, summary_table, val_curve, write_comparison


def _run(root, name, scores, change=None):
    run = root / name
    run.mkdir()
    rows = [{"step": s, "kind": "val", "val/mean@4/per_test_case": v} for s, v in scores]
    rows += [{"step": s, "kind": "train", "rollout/reward_mean": 0.1 * s} for s in range(1, 5)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn', encoding="utf-8")
    if change is not None:
        (run / "summary.json").write_text(json.dumps({
            "start_score": scores[0][1], "end_score": scores[-1][1], "change": change, "ci_low": change - 0.05,
            "ci_high": change + 0.05, "num_prompts": 128, "playbook_size": 3, "reflection_parse_rate": 0.9,
            "minutes": 12.5}), encoding="utf-8")
    return run


def test_groups_curves_and_table(tmp_path):
    a = _run(tmp_path, "resd_s0", [(0, 0.2), (4, 0.25)], change=0.05)
    b = _run(tmp_path, "resd_s1", [(0, 0.2), (4, 0.31)], change=0.11)
    c = _run(tmp_path, "grpo_s0", [(0, 0.2), (4, 0.18)])
    assert [group_of(r) for r in (a, b, c)] == ["resd", "resd", "grpo"]
    assert val_curve([json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()[:-1]]) == \
        ([0, 4], [0.2, 0.25])
    table = summary_table([a, b, c])
    assert "| resd | resd_s0 | 0.200 | 0.250 | +0.050 | [+0.000, +0.100] | 128 | 3 | 90% | 12.5 |" in table
    assert "| grpo | grpo_s0 | unfinished" in table
    assert "| resd | 2 | +0.080 | 0.042 |" in table  # mean and sample sd of +0.05 and +0.11
    written = write_comparison([a, b, c], tmp_path / "out")
    assert {p.name for p in written} == {"compare_val.png", "compare_reward.png", "compare.md"}
    assert all(p.stat().st_size > 0 for p in written)


def test_cli_needs_out_and_compare_for_several_runs(tmp_path, capsys):
    a = _run(tmp_path, "resd_s0", [(0, 0.2), (4, 0.25)], change=0.05)
    b = _run(tmp_path, "sdpo_s0", [(0, 0.2), (4, 0.22)], change=0.02)
    assert main([str(a), str(b)]) == 2 and "need --compare" in capsys.readouterr().err
    assert main(["--compare", str(a), str(b)]) == 2 and "needs --out" in capsys.readouterr().err
    assert main(["--compare", str(a), str(b), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "compare.md").is_file()
    assert main(["--compare", str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def _val_scores(run, start, end, ids=("t0", "t1", "t2", "t3")):
    lines = [{"step": 0, "n": 4, "task_ids": list(ids), "mean_at_n": start},
             {"step": 8, "n": 4, "task_ids": list(ids), "mean_at_n": end}]
    (run / "val_scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")


def test_pooled_table_averages_seeds_per_prompt_and_compares_with_the_first_method(tmp_path):
    a = _run(tmp_path, "resd_s0", [(0, 0.25), (8, 0.5)], change=0.25)
    b = _run(tmp_path, "resd_s1", [(0, 0.25), (8, 0.5)], change=0.25)
    c = _run(tmp_path, "sdpo_s0", [(0, 0.25), (8, 0.25)], change=0.0)
    _val_scores(a, [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5])
    _val_scores(b, [0.0, 0.5, 0.0, 0.5], [1.0, 0.0, 0.5, 0.5])
    _val_scores(c, [0.0, 0.5, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0])
    table = pooled_table([a, b, c], resamples=2000)
    # resd per prompt: start (0, .25, .25, .5), end (.75, .25, .5, .5) -> change +0.25; sdpo unchanged
    assert "| resd | 2 | 0.250 | 0.500 | +0.250 |" in table
    assert "| sdpo | 1 | 0.250 | 0.250 | +0.000 | [+0.000, +0.000] | -0.250 |" in table
    assert "on the 4 prompts" in table
    _val_scores(c, [0.0, 0.5], [0.0, 0.5], ids=("t0", "t9"))  # only t0 shared by every run
    assert "on the 1 prompts" in pooled_table([a, b, c], resamples=200)
    with (c / "val_scores.jsonl").open("a", encoding="utf-8") as handle:  # malformed lines are skipped
        handle.write('{"step": "late", "task_ids": ["t0"], "mean_at_n": [1.0]}\n{"step": 9, "task_ids": ["t0"]}\n')
    assert "on the 1 prompts" in pooled_table([a, b, c], resamples=200)
    (c / "val_scores.jsonl").unlink()
    assert "| sdpo |" not in pooled_table([a, b, c], resamples=200)  # no scores saved: left out
    assert pooled_table([c]) == ""

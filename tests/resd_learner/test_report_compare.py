"""resd-report --compare: runs grouped by method, curves on shared axes, the summary table."""

from __future__ import annotations

import json

from resd_learner.report import main
from resd_learner.report_compare import group_of, summary_table, val_curve, write_comparison


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

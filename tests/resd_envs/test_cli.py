"""The resd-envs command line and the parallel verify path, on Manufactoria-Has."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import resd_envs
from resd_envs.cli import main

ENV = "resd/Manufactoria-Has-v0"


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--details"]) == 0
    out = capsys.readouterr().out
    assert "resd/Manufactoria-Has-v0" in out and "train=742" in out and "test=132" in out
    assert main(["show", ENV, "--split", "test", "--index", "0"]) == 0
    out = capsys.readouterr().out
    assert '"task_id"' in out and "Design a factory" in out


def test_verify_reads_a_file_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fam = resd_envs.family(ENV)
    task = fam.tasks("test")[0]
    response = tmp_path / "response.txt"
    response.write_text(fam.reference_response(task), encoding="utf-8")
    assert main(["verify", ENV, "--task-id", task["task_id"], "--file", str(response)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is True and result["reward"] == 1.0 and result["num_tests"] == len(result["test_results"])


def test_eval_responses_file_writes_results_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fam = resd_envs.family(ENV)
    rows = fam.tasks("test")[:4]
    lines = [{"task_id": rows[0]["task_id"], "response": fam.reference_response(rows[0])}]
    lines += [{"task_id": r["task_id"], "response": "I don't know"} for r in rows[1:]]
    responses = tmp_path / "in.jsonl"
    responses.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    out_file, summary_file = tmp_path / "out.jsonl", tmp_path / "summary.json"
    code = main(["eval", ENV, "--responses", str(responses), "--out", str(out_file),
                 "--summary-json", str(summary_file)])
    assert code == 0
    results = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["passed"] for r in results] == [True, False, False, False]
    summary = json.loads(summary_file.read_text())
    assert summary["num_tasks"] == 4 and summary["per_task_accuracy"] == 0.25
    assert "per-task accuracy" in capsys.readouterr().out


def test_bad_cli_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"}\nnot json\n', encoding="utf-8")
    assert main(["eval", ENV, "--responses", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["eval", ENV, "--responses", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["show", "resd/Nope-v0"]) == 2
    assert "not a resd environment" in capsys.readouterr().err
    assert main(["show", ENV, "-o", "no_equals_sign"]) == 2
    assert "must look like key=value" in capsys.readouterr().err


def test_parallel_verify_matches_inline_and_keeps_order() -> None:
    fam = resd_envs.family(ENV)
    rows = fam.tasks("train")[:40]
    ids = [r["task_id"] for r in rows]
    answers = [fam.reference_response(r) if i % 3 else "```manufactoria\nSTART s:\n```" for i, r in enumerate(rows)]
    pooled = resd_envs.verify(ENV, ids, answers, max_workers=2, reward_mode="pass_rate")
    inline = resd_envs.verify(ENV, ids, answers, max_workers=1, reward_mode="pass_rate")
    assert pooled == inline
    assert [r.task_id for r in pooled] == ids
    assert [r.passed for r in pooled] == [bool(i % 3) for i in range(40)]
    again = asyncio.run(resd_envs.averify(ENV, ids[:3], answers[:3]))
    assert [r.task_id for r in again] == ids[:3]


def test_parallel_verify_works_from_a_script_without_a_main_guard() -> None:
    import subprocess
    import sys

    script = (
        "import resd_envs\n"
        "fam = resd_envs.family('resd/Manufactoria-Has-v0')\n"
        "rows = fam.tasks('test')[:30]\n"
        "res = resd_envs.verify('resd/Manufactoria-Has-v0', [r['task_id'] for r in rows],\n"
        "                       [fam.reference_response(r) for r in rows], max_workers=2)\n"
        "print('printed once', sum(r.passed for r in res))\n"
    )
    out = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("printed once") == 1 and "printed once 30" in out.stdout


def test_a_failing_worker_is_a_clear_error_and_the_pool_is_replaced() -> None:
    from resd_envs.pool import VerifyPoolError, shared_pool

    fam = resd_envs.family(ENV)
    rows = fam.tasks("test")[:20]
    jobs = [(r["task_id"], "x") for r in rows]
    pool = shared_pool(ENV, {}, 2)
    pool.workers[0].process.kill()
    pool.workers[0].process.wait()
    with pytest.raises(VerifyPoolError, match="exited unexpectedly"):
        pool.map(jobs, ("binary", "minimal", 100))
    fresh = shared_pool(ENV, {}, 2)
    assert fresh is not pool and len(fresh.map(jobs, ("binary", "minimal", 100))) == 20


def test_check_passes_and_skips_envs_whose_data_is_not_configured(monkeypatch, capsys) -> None:
    assert main(["check", ENV]) == 0
    assert capsys.readouterr().out.startswith("ok    resd/Manufactoria-Has-v0")
    monkeypatch.delenv("RESD_FINER_DATA", raising=False)
    assert main(["check", "resd/Finer-v0"]) == 0
    assert capsys.readouterr().out.startswith("skip  resd/Finer-v0")


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", ENV, "--task-id", "has-count-R1-Y3", "--file", "{missing}"],
        ["verify", ENV, "--task-id", "has-count-R1-Y3", "--file", "{binary}"],
        ["verify", ENV, "--task-id", "has-count-R1-Y3", "--file", "{folder}"],
        ["eval", ENV, "--responses", "{binary}"],
        ["eval", ENV, "--responses", "{nested}"],
        ["eval", ENV, "--reference", "--split", "test", "--out", "{folder}/no/such/dir/out.jsonl"],
        ["show", ENV, "--split", "test", "--index", "132"],
        ["show", ENV, "--split", "test", "--index", "-1"],
        ["show", ENV, "-o", "foo=1"],
        ["verify", ENV, "--task-id", "has-count-R1-Y3", "--response", "x", "-o", "reward_tests=all"],
    ],
)
def test_file_and_option_errors_are_one_line_without_traceback(tmp_path: Path, capsys, argv: list[str]) -> None:
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\x80\x81\xff\x00" * 10)
    nested = tmp_path / "nested.jsonl"
    nested.write_text("[" * 100_000 + "\n", encoding="utf-8")
    paths = {"missing": str(tmp_path / "missing.txt"), "binary": str(binary), "folder": str(tmp_path),
             "nested": str(nested)}
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resd-envs: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_check_reports_a_missing_picture_library_as_skipped(monkeypatch, capsys) -> None:
    import resd_envs.bouncingsim.render as render
    from resd_envs.errors import MissingDependencyError

    def no_pillow(*args, **kwargs):
        raise MissingDependencyError("pictures need pillow: pip install pillow")

    monkeypatch.setattr(render, "render_frame", no_pillow)
    assert main(["check", "resd/BouncingSim-Easy-v0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok    resd/BouncingSim-Easy-v0") and "picture check skipped: pictures need pillow" in out


def test_unknown_keyword_arguments_name_the_valid_ones() -> None:
    from resd_envs.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'foo'.*valid ones are split, reward_mode.*reward_tests"):
        resd_envs.make(ENV, foo=1)
    with pytest.raises(ConfigError, match=r"verify\(\): unknown keyword argument\(s\) 'foo'.*max_workers"):
        resd_envs.verify(ENV, ["has-count-R1-Y3"], ["x"], foo=1)
    with pytest.raises(ConfigError, match="level.*sandbox"):
        resd_envs.make("resd/BouncingSim-Easy-v0", sandboxx="bwrap")


def test_privileged_observation_is_refused_with_several_attempts() -> None:
    from resd_envs.errors import ConfigError

    with pytest.raises(ConfigError, match="privileged"):
        resd_envs.make(ENV, feedback="privileged", max_attempts=2)
    env = resd_envs.make(ENV, feedback="privileged", split="test")
    env.reset(options={"task_index": 0})
    obs, _, _, _, info = env.step("```manufactoria\nSTART start:\n    NEXT NONE\n\nEND end\n```")
    assert obs == info["privileged_feedback"] and "expected accept" in obs
    result = resd_envs.verify(ENV, ["has-count-R1-Y3"], ["x"])[0]
    assert result.privileged_feedback and result.as_dict()["privileged_feedback"] == result.privileged_feedback

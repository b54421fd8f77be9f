"""--reference-url against a local stand-in server, and the command line with its reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fidelity_standin import standin_server

from resd_envs import cli
from resd_envs.errors import MissingDependencyError
from resd_envs.fidelity import ReferenceServerError, run_fidelity, visual, write_png
from resd_envs.fidelity.cli import main as fidelity_main

DATA = Path(__file__).resolve().parent / "data"


def _good_manufactoria_rows(tmp_path: Path) -> Path:
    lines = (DATA / "manufactoria_check.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines[:5] + [lines[10]]) + "\n", encoding="utf-8")  # 5 tape rows + 1 response row
    return path


def test_live_manufactoria_agrees_with_an_honest_server(tmp_path: Path) -> None:
    path = _good_manufactoria_rows(tmp_path)
    with standin_server() as url:
        report = run_fidelity("resd/Manufactoria-Has-v0", path, reference_url=url)
    assert report.reference == url and report.ok and report.total == 6
    errors = [c for c in report.checks if c.ours.get("result") == "error"]
    assert errors and all(c.reference["error_message"] == c.ours["error_message"] for c in errors)


def test_live_manufactoria_finds_a_lying_server(tmp_path: Path) -> None:
    path = _good_manufactoria_rows(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    tape = next(r["tape"] for r in rows if r.get("result") in ("accept", "reject"))
    with standin_server(lies={tape}) as url:
        report = run_fidelity("resd/Manufactoria-Has-v0", path, reference_url=url)
    bad = report.disagreements()
    assert bad and all(c.status == "DISAGREE" for c in bad)
    assert any(c.input.get("tape") == tape and c.ours["result"] != c.reference["result"] for c in bad)


def test_live_bouncingsim_uses_the_servers_check(tmp_path: Path) -> None:
    lines = (DATA / "bouncingsim_check.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # two scenes, easy and medium
    with standin_server() as url:
        report = run_fidelity("resd/BouncingSim-Easy-v0", path, reference_url=url)
    assert report.ok and report.total == 30
    assert all(c.reference["server_verdict"] == 1 for c in report.checks)
    with standin_server(lies={"predict_position(0.70)"}) as url:  # the server fails t = 0.7 on purpose
        report = run_fidelity("resd/BouncingSim-Easy-v0", path, reference_url=url)
    bad = report.disagreements()
    assert [c.input["time"] for c in bad] == [0.7, 0.7]
    assert all(c.status == "DISAGREE" and "server's check_distance" in (c.note or "") for c in bad)


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    path = _good_manufactoria_rows(tmp_path)
    with standin_server() as url:
        pass  # closed again: nothing listens on that port now
    with pytest.raises(ReferenceServerError, match="cannot reach the reference server"):
        run_fidelity("resd/Manufactoria-Has-v0", path, reference_url=url)
    with pytest.raises(ReferenceServerError, match="not an http"):
        run_fidelity("resd/Manufactoria-Has-v0", path, reference_url="localhost:1235")


def test_cli_on_the_shipped_sample(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert cli.main(["fidelity", "resd/Manufactoria-Has-v0", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "program/tape" in text and "resd/Manufactoria-Has-v0: 332/332 agree (100.00%)" in text and "-> OK" in text
    report = json.loads(out.read_text())
    assert report["ok"] and report["totals"]["checks"] == 332 and report["disagreements"] == []


def test_cli_reports_disagreements_and_writes_html_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    html, png, js = tmp_path / "r.html", tmp_path / "r.png", tmp_path / "r.json"
    code = cli.main(["fidelity", "resd/BouncingSim-Easy-v0", "--against", str(DATA / "bouncingsim_check.jsonl"),
                     "--html", str(html), "--png", str(png), "--json", str(js)])
    assert code == 1
    text = capsys.readouterr().out
    assert "[DISAGREE] line 4 shifted/G_1_2 t=0.5" in text and "line 5: the expected positions" in text
    page = html.read_text()
    assert "<svg" in page and "shifted/G_1_2" in page and "Malformed rows (3" in page
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(js.read_text())
    assert report["groups"]["G/easy"]["error_max"] > 79 and report["worst"][0]["uid"] == "shifted/G_1_2"
    assert [e["line"] for e in report["malformed_rows"]] == [5, 6, 7]


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["fidelity", "resd/Finer-v0", "--against", str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert fidelity_main(["resd/Finer-v0", "--reference-url", "http://127.0.0.1:9"]) == 2


def test_png_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_fidelity("resd/Finer-v0")
    pillow = write_png(report, tmp_path / "p.png", backend="pillow")
    assert pillow.read_bytes()[:4] == b"\x89PNG"
    scenes = run_fidelity("resd/BouncingSim-Medium-v0")
    assert write_png(scenes, tmp_path / "s.png", backend="pillow").stat().st_size > 1000
    monkeypatch.setattr(visual, "png_backend", lambda: None)
    with pytest.raises(MissingDependencyError, match="neither is installed"):
        write_png(report, tmp_path / "x.png")

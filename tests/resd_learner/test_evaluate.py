"""Tests of resd_learner.evaluate: the metric math on hand-computed cases, and the pipeline with
scripted backends (a fake generator, a local OpenAI-compatible HTTP server) on a toy text env."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import gymnasium
import numpy as np
import pytest

from resd_learner import evaluate as ev

# -- math -----------------------------------------------------------------------------------------
VALUES = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]


def test_mean_at_n_hand_computed():
    # (0.5 + 0 + 1) / 3
    assert ev.mean_at_n(VALUES) == pytest.approx(0.5)
    # per-test-case fractions: (0.25+0.75)/2=0.5 and (1+0)/2=0.5 -> 0.5
    assert ev.mean_at_n([[0.25, 0.75], [1.0, 0.0]]) == pytest.approx(0.5)
    # ragged: (1/3 + 1) / 2
    assert ev.mean_at_n([[1, 0, 0], [1]]) == pytest.approx(2 / 3)


def test_best_at_n_exact_hand_computed():
    assert ev.best_at_n_exact(VALUES) == pytest.approx(2 / 3)
    assert ev.best_at_n_exact([[0.25, 0.75], [0.5, 0.0]]) == pytest.approx((0.75 + 0.5) / 2)


def test_bootstrap_constant_problems_are_exact():
    # every resample of a constant problem has that constant as its max
    assert ev.best_at_n_bootstrap([[0, 0, 0, 0], [1, 1, 1, 1], [0.5, 0.5]]) == pytest.approx(0.5)


def test_bootstrap_single_resample_single_draw_is_the_drawn_value():
    # n=1, one resample: the estimate is exactly the value at the first index drawn from seed 42
    index = np.random.RandomState(42).choice(4, size=1, replace=True)[0]
    row = [0.1, 0.2, 0.3, 0.4]
    assert ev.best_at_n_bootstrap([row], n=1, resamples=1, seed=42) == pytest.approx(row[index])


def test_bootstrap_close_to_expected_max_and_below_exact():
    # one success out of 4: P(max of 4 draws with replacement = 1) = 1 - (3/4)^4 = 0.68359375
    est = ev.best_at_n_bootstrap([[1, 0, 0, 0]], n=4, resamples=1000, seed=42)
    assert est == pytest.approx(1 - 0.75**4, abs=0.04)
    assert est <= ev.best_at_n_exact([[1, 0, 0, 0]])


def test_bootstrap_is_deterministic_and_seeded():
    rows = [[1, 0, 0, 0], [0.25, 0.5, 0, 1]]
    assert ev.best_at_n_bootstrap(rows) == ev.best_at_n_bootstrap(rows)
    assert ev.best_at_n_bootstrap(rows, seed=42) != ev.best_at_n_bootstrap(rows, seed=7)


def test_bootstrap_restarts_seed_per_problem():
    # the same row twice gives the same per-problem estimate, so the mean equals the single-row value
    row = [1, 0, 0, 0]
    assert ev.best_at_n_bootstrap([row, row]) == ev.best_at_n_bootstrap([row])


@pytest.mark.parametrize("fn", [ev.mean_at_n, ev.best_at_n_exact, ev.best_at_n_bootstrap])
def test_bad_values_raise(fn):
    with pytest.raises(ValueError, match="no problems"):
        fn([])
    with pytest.raises(ValueError, match="problem 1 has no samples"):
        fn([[1.0], []])
    with pytest.raises(ValueError, match="non-finite"):
        fn([[float("nan")]])


def test_bootstrap_bad_arguments():
    with pytest.raises(ValueError, match="n=0"):
        ev.best_at_n_bootstrap([[1]], n=0)
    with pytest.raises(ValueError, match="resamples"):
        ev.best_at_n_bootstrap([[1]], resamples=0)


def test_summarize_keys():
    out = ev.summarize({"per_task": VALUES}, n=4)
    assert out["mean@4/per_task"] == pytest.approx(0.5)
    assert out["best@4/per_task"] == pytest.approx(2 / 3)
    assert 0.5 <= out["best@4_bootstrap/per_task"] <= 2 / 3


def test_config_validation_lists_all_problems():
    cfg = ev.EvalSettings(env_id="x", n=0, top_p=0.0, max_tokens=0)
    with pytest.raises(ValueError) as info:
        cfg.validate()
    text = str(info.value)
    assert "n=0" in text and "top_p=0.0" in text and "max_tokens=0" in text


# -- pipeline on a toy gymnasium text env ------------------------------------------------------------
class EchoEnv(gymnasium.Env):
    """Prompt 'say W'; reward = fraction of the 2 required words present, info carries passed/score."""

    def __init__(self):
        self.observation_space = gymnasium.spaces.Text(100)
        self.action_space = gymnasium.spaces.Text(100)
        self.word = ""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.word = ["red", "blue", "green"][int(self.np_random.integers(3))]
        return f"say {self.word} twice", {}

    def step(self, action):
        count = min(action.split().count(self.word), 2)
        score = count / 2
        return "", score, True, False, {"passed": count == 2, "score": score}


gymnasium.register(id="EvalToyEcho-v0", entry_point=EchoEnv, disable_env_checker=True)


class ScriptedBackend:
    """Answers sample i of each prompt with the word repeated i % 3 times (0, 1, 2, 0 ...)."""

    def __init__(self):
        self.calls = []

    def generate(self, messages_batch, *, n, temperature, top_p, max_tokens, seed):
        self.calls.append(dict(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed))
        out = []
        for messages in messages_batch:
            word = messages[-1]["content"].split()[1]
            out.append([SimpleNamespace(text=" ".join([word] * (i % 3)), finish_reason="stop") for i in range(n)])
        return out


def test_evaluate_generic_gymnasium_env():
    cfg = ev.EvalSettings(env_id="EvalToyEcho-v0", n=3, limit=5, batch_size=2, max_tokens=8)
    backend = ScriptedBackend()
    result = ev.evaluate(backend, cfg, save_responses=True)
    # per sample: per_task 0,0,1 and per_test_case 0,0.5,1 for every problem
    assert result.metrics["mean@3/per_task"] == pytest.approx(1 / 3)
    assert result.metrics["best@3/per_task"] == pytest.approx(1.0)
    assert result.metrics["mean@3/per_test_case"] == pytest.approx(0.5)
    assert result.metrics["best@3/per_test_case"] == pytest.approx(1.0)
    assert result.metrics["num_problems"] == 5
    assert len(backend.calls) == 3  # batches of 2, 2, 1 prompts
    assert backend.calls[0]["temperature"] == 0.6 and backend.calls[0]["top_p"] == 0.95
    assert [p["task_id"] for p in result.problems] == [f"test-seed-{i}" for i in range(5)]
    assert result.problems[0]["samples"][2]["response"].count(" ") == 1
    json.dumps(result.to_json())  # serialisable


def test_generic_env_needs_limit():
    with pytest.raises(ValueError, match="--limit"):
        ev.load_prompts(ev.EvalSettings(env_id="EvalToyEcho-v0"))


def test_backend_with_wrong_sample_count_is_reported():
    class Short(ScriptedBackend):
        def generate(self, messages_batch, **kw):
            return [row[:1] for row in super().generate(messages_batch, **kw)]

    with pytest.raises(RuntimeError, match="expected 2 per prompt"):
        ev.evaluate(Short(), ev.EvalSettings(env_id="EvalToyEcho-v0", n=2, limit=1))


# -- OpenAI-compatible server ---------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self._reply({"data": [{"id": "toy-model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        word = body["messages"][-1]["content"].split()[1]
        choices = [
            {"index": i, "message": {"role": "assistant", "content": " ".join([word] * (i % 3))}, "finish_reason": "stop"}
            for i in range(body["n"])
        ]
        self._reply({"choices": choices})

    def _reply(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server():
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_cli_with_openai_url(server, tmp_path, capsys):
    url = f"http://127.0.0.1:{server.server_port}/v1"
    out = tmp_path / "eval.json"
    code = ev.main(["--url", url, "--env", "EvalToyEcho-v0", "--n", "3", "--limit", "2", "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["metrics"]["mean@3/per_test_case"] == pytest.approx(0.5)
    assert data["config"]["source"]["served_model"] == "toy-model"
    assert server.requests[0]["n"] == 3 and server.requests[0]["model"] == "toy-model"
    assert "mean@3/per_task" in capsys.readouterr().out


def test_cli_unreachable_url_is_a_clear_error(capsys):
    code = ev.main(["--url", "http://127.0.0.1:9/v1", "--served-model", "m", "--env", "EvalToyEcho-v0", "--limit", "1"])
    assert code == 2
    assert "cannot reach" in capsys.readouterr().err


def test_resolve_model_dir(tmp_path):
    (tmp_path / "ckpt" / "hf").mkdir(parents=True)
    (tmp_path / "ckpt" / "hf" / "config.json").write_text("{}")
    assert ev.resolve_model_dir(tmp_path / "ckpt") == tmp_path / "ckpt" / "hf"
    assert ev.resolve_model_dir(tmp_path / "ckpt" / "hf") == tmp_path / "ckpt" / "hf"
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ev.resolve_model_dir(tmp_path / "missing")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="run directory"):
        ev.resolve_model_dir(tmp_path / "run")


# -- a real model through the learner's HF backend --------------------------------------------------------------
def test_cli_with_tiny_model_checkpoint(tmp_path, tiny_model_dir):
    import shutil

    ckpt = tmp_path / "run" / "checkpoints" / "step_4"
    shutil.copytree(tiny_model_dir, ckpt / "model")
    outs = []
    for name in ("a.json", "b.json"):
        out = tmp_path / name
        code = ev.main(["--model", str(ckpt), "--env", "EvalToyEcho-v0", "--n", "2", "--limit", "2",
                        "--max-tokens", "6", "--max-model-len", "512", "--save-responses", "--out", str(out)])
        assert code == 0
        outs.append(json.loads(out.read_text()))
    assert outs[0]["config"]["source"]["model"] == str(ckpt / "model")
    assert outs[0]["problems"] == outs[1]["problems"]  # same seed, same samples
    for key, value in outs[0]["metrics"].items():
        if key != "num_problems":
            assert 0.0 <= value <= 1.0
    assert all(len(p["samples"]) == 2 for p in outs[0]["problems"])


def test_resd_env_scored_through_verify():
    import resd_envs

    env_id = "resd/Manufactoria-Has-v0"
    fam = resd_envs.family(env_id)
    rows = resd_envs.load_tasks(env_id, "test")[:2]
    references = {r["task_id"]: fam.reference_response(fam.task_by_id(r["task_id"])) for r in rows}

    class ReferenceThenGibberish:
        def generate(self, messages_batch, *, n, **kw):
            out = []
            for messages in messages_batch:
                task_id = next(r["task_id"] for r in rows if r["messages"] == list(messages))
                out.append([SimpleNamespace(text=references[task_id], finish_reason="stop"),
                            SimpleNamespace(text="no idea", finish_reason="stop")][:n])
            return out

    result = ev.evaluate(ReferenceThenGibberish(), ev.EvalSettings(env_id=env_id, n=2, limit=2))
    assert result.metrics["mean@2/per_task"] == pytest.approx(0.5)
    assert result.metrics["best@2/per_task"] == pytest.approx(1.0)
    assert result.metrics["best@2_bootstrap/per_task"] == pytest.approx(0.75, abs=0.05)  # 1 - (1/2)^2
    assert [p["task_id"] for p in result.problems] == [r["task_id"] for r in rows]
    assert result.problems[0]["samples"][1]["error_type"] is not None

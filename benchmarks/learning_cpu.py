"""RESD vs SDPO vs SDPO+ss vs GRPO on FinerMini on CPU, at equal rollout compute; writes results/learning_cpu/.

Every method starts from the same format-warm-started SmolLM2-135M (the quickstart's base model,
cached after the first run), takes the same number of optimizer steps and generates the same number
of rollouts per step (the quickstart's ``train.batch_size``: RESD / SDPO / SDPO+ss one rollout per
prompt; GRPO a group of 4 rollouts for a quarter of the prompts, so it sees a quarter as many
distinct prompts). All share the quickstart's settings except GRPO's learning rate (``GRPO_LR``).
That is equal *rollout* compute; RESD also spends generation on its reflector, tagger and curator
calls, so each run's wall time is reported next to its score.

Each run is ``resd-learn --config configs/quickstart.yaml`` with the method's overrides and a seed;
its ``summary.json`` (see :mod:`resd_learner.summary`) gives the held-out start -> end change and
its paired bootstrap CI. Output in ``results/learning_cpu/``: ``compare.md`` (the table),
``compare_val.png`` and ``compare_reward.png`` (the curves; the same files as
``resd-report --compare results/learning_cpu/runs/* --out results/learning_cpu``), ``results.json`` and
the run directories under ``runs/``.

Command (documented in docs/evaluation.md)::

    python benchmarks/learning_cpu.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "quickstart.yaml")
DTYPE = "bfloat16"
"""Pinned (the quickstart says ``auto``) so the stored runs are reproduced on any CPU: all of them ran in
bf16 on a CPU with AMX-BF16. Without AVX512-BF16 / AMX bf16 is emulated and about twice as slow; pass
``model.dtype=float32`` for a float32 comparison (results/learning_cpu/fp32/ holds one)."""
GRPO_GROUP = 4
GRPO_LR = 2.0e-5
"""GRPO's learning rate: the quickstart's shared 2e-4 (tuned on RESD) broke GRPO's answer format within
8 steps (held-out 0.205 -> 0.010, ``tuning/grpo_lr2e-4_s0``), so GRPO runs 10x lower. One value tried,
not a tuned optimum; the official recipe uses 1e-6 for billion-parameter models."""


def method_overrides(method: str) -> list[str]:
    """Overrides turning the quickstart (RESD) into ``method`` at equal rollouts per step."""
    if method == "resd":
        return []
    if method in ("sdpo", "sdpo_ss"):
        return [f"method.name={method}"]  # the baselines imply context.enabled=false, no solution buffer
    if method == "grpo":
        from resd_learner.config import load_config

        base = load_config(CONFIG)
        if base.train.batch_size % GRPO_GROUP or (base.env.num_train or 0) % GRPO_GROUP:
            raise ValueError(f"{CONFIG}: train.batch_size and env.num_train must be multiples of {GRPO_GROUP} for GRPO")
        return ["method.name=grpo", f"optim.lr={GRPO_LR}", f"rollout.n={GRPO_GROUP}", f"train.batch_size={base.train.batch_size // GRPO_GROUP}",
                f"env.num_train={base.env.num_train // GRPO_GROUP}"]
    raise ValueError(f"unknown method {method!r}; use one of {METHODS}")


METHODS = ("resd", "sdpo", "sdpo_ss", "grpo")


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


ONLY_IN_DTYPE = {"optim.lr_scale_float32": "float32"}
"""Settings that act only in one ``model.dtype``: a run in another dtype is reused whatever their value
(bf16 runs made before ``optim.lr_scale_float32`` existed stay valid)."""


def settings_changed(run_dir: Path, overrides: list[str]) -> list[str]:
    """``key: stored -> wanted`` for each setting of a finished run that differs from this invocation's.

    A finished run is reused only when it was made with the same settings (its ``config.yaml``, read
    with today's defaults for keys it predates), so a changed quickstart never hides behind old runs.
    The invocation's ``auto`` settings are resolved as ``resd-learn`` resolves them before it writes
    ``config.yaml`` (:func:`resd_learner.cli.resolve_auto_settings`).
    """
    from resd_learner.cli import resolve_auto_settings
    from resd_learner.config import load_config, to_dict

    if not (run_dir / "config.yaml").is_file():
        return ["config.yaml: missing, so its settings are unknown"]
    stored = _flat(to_dict(load_config(run_dir / "config.yaml")))
    wanted = _flat(to_dict(resolve_auto_settings(load_config(CONFIG, overrides))[0]))
    for key, dtype in ONLY_IN_DTYPE.items():
        if stored.get("model.dtype") != dtype and wanted.get("model.dtype") != dtype:
            stored.pop(key, None)
            wanted.pop(key, None)
    return [f"{key}: {stored.get(key)!r} -> {wanted.get(key)!r}" for key in sorted(set(stored) | set(wanted))
            if key != "train.run_dir" and stored.get(key) != wanted.get(key)]


def run_one(method: str, seed: int, out: Path, extra: list[str]) -> dict:
    """Train one (method, seed) run unless a finished run with the same settings exists; return its summary
    with the wall time.

    Raises:
        SystemExit: a finished run in the way was made with other settings (listed).
    """
    run_dir = out / "runs" / f"{method}_s{seed}"
    summary_path = run_dir / "summary.json"
    overrides = [f"model.dtype={DTYPE}", *method_overrides(method), f"train.seed={seed}", f"train.run_dir={run_dir}",
                 *extra]
    if summary_path.is_file() and (changed := settings_changed(run_dir, overrides)):
        raise SystemExit(f"{run_dir} is a finished run made with other settings ({'; '.join(changed)}); "
                         "pass another --out, or delete it to rerun it")
    if not summary_path.is_file():
        command = [sys.executable, "-m", "resd_learner.cli", "--config", CONFIG, *overrides]
        print("+", " ".join(command), flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True)
        (run_dir / "wall_s.txt").write_text(f"{time.perf_counter() - start:.1f}\n", encoding="utf-8")
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # ~2.6 GB of weights; the comparison needs none
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    wall = run_dir / "wall_s.txt"
    summary["wall_s"] = float(wall.read_text()) if wall.is_file() else None
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", default="results/learning_cpu")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    results: dict[str, list[dict]] = {}
    for method in args.methods:
        for seed in args.seeds:
            summary = run_one(method, seed, out, args.overrides)
            summary["seed"] = seed
            results.setdefault(method, []).append(summary)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    from resd_learner.report_compare import write_comparison  # the same files as resd-report --compare

    runs = [out / "runs" / f"{method}_s{seed}" for method in args.methods for seed in args.seeds]
    for path in write_comparison(runs, out):
        print(f"wrote {path}")
    print((out / "compare.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Seconds per training step, per phase: RESD vs SDPO vs GRPO at an equal batch, in one process.

All three methods train the tiny offline model (``model.path: tiny``) on the same Manufactoria-Has
prompts with the same generation engine (one in-process vLLM engine shared by the three trainers,
reset to the initial weights before each method; ``--backend hf`` uses transformers generation).
"Equal batch" = the same number of sequences per step: RESD and SDPO sample one response for each of
``--sequences`` prompts, GRPO ``--group`` responses for each of ``--sequences / --group`` prompts.
Each method runs ``--warmup`` steps that are not counted, then ``--steps`` measured steps on the
same outer batch; the table shows the median seconds per phase (the trainer's ``time/*_s``), the
generation rounds per step, and the ratios RESD/SDPO, RESD/GRPO and SDPO/GRPO.

A random tiny model never solves a task, so RESD's context update here is one reflector round and one
curator round over every sample (success tagging needs a success); a real run adds the tagging round
when some samples succeed.

    python benchmarks/step.py [--sequences 8] [--group 2] [--max-tokens 64] [--steps 3] [--backend vllm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

PHASES = ("rollout", "context", "teacher_inputs", "teacher", "loss", "backward", "optim", "ema", "sync")
METHODS = ("resd", "sdpo", "grpo")
SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def overrides(method: str, args: argparse.Namespace, run_dir: Path) -> list[str]:
    """Config overrides (over configs/smoke.yaml) for one method at the common batch."""
    common = [f"train.run_dir={run_dir / method}", f"rollout.backend={args.backend}", "train.val_before_train=false",
              "train.val_after_train=false", "train.val_every=0", "train.progress=false", "train.tensorboard=false",
              f"rollout.max_tokens={args.max_tokens}", f"context.max_reflection_tokens={args.max_tokens}",
              f"env.num_train={args.sequences}", f"distributed.zero_stage={args.zero_stage}"]
    if method == "grpo":
        if args.sequences % args.group:
            raise SystemExit(f"--sequences {args.sequences} must be a multiple of --group {args.group}")
        return common + ["method.name=grpo", f"rollout.n={args.group}", f"train.batch_size={args.sequences // args.group}"]
    return common + [f"method.name={method}", "rollout.n=1", f"train.batch_size={args.sequences}"]


def measure(method: str, args: argparse.Namespace, run_dir: Path, llm: object | None) -> dict[str, float]:
    """Median seconds per phase (and per step) of ``method`` over the measured steps."""
    from resd_learner.config import load_config
    from resd_learner.trainer import Trainer

    config = load_config(SMOKE, overrides(method, args, run_dir))
    trainer = Trainer(config, llm=llm)
    trainer._push_weights()  # every method starts from the same weights in the shared engine
    batch = trainer._batch_tasks(0)
    records = [trainer.train_step(batch) for _ in range(args.warmup + args.steps)][args.warmup:]
    out = {phase: statistics.median(r[f"time/{phase}_s"] for r in records) for phase in PHASES}
    out["step"] = statistics.median(r["time/step_s"] for r in records)
    out["rounds"] = 1 + statistics.median(r.get("context/generate_calls", 0) for r in records)
    out["sequences"] = len(batch) * config.rollout.n
    trainer.engine.destroy()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=8, help="sequences per step (all methods)")
    parser.add_argument("--group", type=int, default=2, help="GRPO responses per prompt")
    parser.add_argument("--max-tokens", type=int, default=64, help="rollout and reflector/curator token cap")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--backend", choices=("vllm", "hf"), default="vllm")
    args = parser.parse_args(argv)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from resd_learner import colocate
    from resd_learner.config import load_config
    from resd_learner.models import resolve_model_path

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="resd-step-bench-") as tmp:
        llm = None
        if args.backend == "vllm":
            base = load_config(SMOKE, overrides("resd", args, Path(tmp)))
            llm = colocate.build_engine(base.rollout, resolve_model_path("tiny"), dtype="float32", seed=0)
        for method in METHODS:
            results[method] = measure(method, args, Path(tmp), llm)
    r, s, g = (results[m] for m in METHODS)
    print(f"tiny model, {int(r['sequences'])} sequences per step (GRPO {args.sequences // args.group} prompts x "
          f"{args.group}), {args.max_tokens}-token cap, {args.backend} backend, ZeRO-{args.zero_stage}; "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    header = f"{'phase':>15} {'RESD s':>8} {'SDPO s':>8} {'GRPO s':>8} {'RESD/SDPO':>10} {'RESD/GRPO':>10} {'SDPO/GRPO':>10}"
    print(header)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:10.2f}" if b > 1e-4 else f"{'-':>10}"

    for phase in (*PHASES, "step", "rounds"):
        print(f"{phase:>15} {r[phase]:8.3f} {s[phase]:8.3f} {g[phase]:8.3f} {ratio(r[phase], s[phase])} "
              f"{ratio(r[phase], g[phase])} {ratio(s[phase], g[phase])}")
    print(f"RESD/SDPO step time ratio: {r['step'] / s['step']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

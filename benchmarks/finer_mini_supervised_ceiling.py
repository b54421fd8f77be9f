"""How much can 8 updates on FinerMini's 128 training prompts move the held-out score at all?

The quickstart's RESD run takes ``env.num_train / train.batch_size`` optimizer steps (8 x 16 prompts)
from its warm-started base and reports the held-out change. This benchmark asks what the same budget
buys when the training signal is perfect: it fine-tunes the same base on the same training prompts with
the **gold** answer as the target (cross-entropy on ``<answer>GOLD</answer>``; FinerMini's
``reference_response``), one pass, ``train.batch_size`` prompts per step, so the same number of steps
and prompts as the RESD run, at each ``--lr``. It is a reference point for the self-distillation
methods, which see the gold only through the teacher's context (the teacher's probability of the gold
tag's first token is 0.27-0.54 there; ``benchmarks/finer_mini_teacher_probe.py``), not a method.

Every model is scored exactly as the trainer's step-0 validation does (same validation prompts, ``eval``
settings and sampling seed, vLLM backend), so the base model's row reproduces the RESD run's step-0
score and each fine-tuned row is paired prompt by prompt with it (95 % paired bootstrap CI, 10,000
resamples). The fine-tuned models are written under ``--work`` when given (not kept in results), else
into a temporary folder that is removed at the end. A bad config, override, learning rate or model
path is reported as one line and exit status 2 before anything is trained.

Run::

    python benchmarks/finer_mini_supervised_ceiling.py --lr 2e-4 5e-5 \\
        --out results/learning_cpu/supervised_ceiling model.dtype=float32
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from resd_learner.warm_start import WarmStartConfig, run_base_model, train_format

CONFIG = "configs/quickstart.yaml"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG, help=f"run config whose base, data and validation to use ({CONFIG})")
    parser.add_argument("--lr", type=float, nargs="+", default=[2e-4],
                        help="learning rates of the supervised pass (the quickstart's optim.lr is 2e-4)")
    parser.add_argument("--out", required=True, help="folder for results.json and output.md")
    parser.add_argument("--work", default=None, help="folder for the fine-tuned models (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value, as for resd-learn")
    return parser.parse_args(argv)


def gold_pairs(config: Any) -> list[tuple[str, str]]:
    """(prompt, gold reply) of the run's training prompts (the first ``env.num_train`` rows)."""
    import resd_envs
    from resd_envs.registration import env_entry, load_object

    kwargs = dict(config.env.kwargs)
    rows = [dict(r) for r in resd_envs.load_tasks(config.env.id, config.env.train_split, **kwargs)]
    family = load_object(env_entry(config.env.id).family_entry_point)(**kwargs)
    rows = rows if config.env.num_train is None else rows[:config.env.num_train]
    return [(str(row["prompt"]), family.reference_response(row)) for row in rows]


def validation_scores(config: Any, model_dir: Path, dtype: str) -> list[float]:
    """Per-prompt per-test-case mean@n of ``model_dir`` under the trainer's step-0 validation settings."""
    import gc

    from resd_learner import colocate
    from resd_learner.models import load_tokenizer
    from resd_learner.rollout import make_backend
    from resd_learner.rollout.collect import collect_samples
    from resd_learner.seeding import derive_seed
    from resd_learner.task_sources import make_task_source
    from resd_learner.trainer import _PHASE_ID

    source = make_task_source(config.env)
    tasks = source.tasks(config.env.val_split, config.env.num_val)
    llm = colocate.build_engine(config.rollout, model_dir, dtype=dtype, seed=config.train.seed)
    try:
        backend = make_backend(config.rollout, model_dir, load_tokenizer(model_dir), dtype=dtype,
                               enable_thinking=config.model.enable_thinking, seed=config.train.seed, llm=llm)
        n = config.eval.n
        samples = collect_samples(backend, source, tasks, n=n, temperature=config.eval.temperature,
                                  top_p=config.eval.top_p, max_tokens=config.eval.max_tokens or config.rollout.max_tokens,
                                  seed=derive_seed(config.train.seed, _PHASE_ID["val"], 0), stop=config.rollout.stop)
    finally:
        colocate.shutdown_engine(llm)
        del llm
        gc.collect()
    return [sum(float(s.score.score) for s in samples[i * n:(i + 1) * n]) / n for i in range(len(tasks))]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from resd_learner.config import load_config

    try:
        config = load_config(args.config, args.overrides)
        settings = [WarmStartConfig(enabled=True, targets="reference", num_examples=config.env.num_train or 1,
                                    epochs=1, batch_size=config.train.batch_size, lr=lr, seed=config.train.seed)
                    for lr in args.lr]
        problems = [p for s in settings for p in s.problems()]
        if problems:
            raise ValueError("; ".join(problems).replace("warm_start.lr", "--lr"))
        pairs = gold_pairs(config)
        if len(pairs) < config.train.batch_size:
            raise ValueError(f"{len(pairs)} training prompts are fewer than train.batch_size={config.train.batch_size}: "
                             "lower the batch size or raise env.num_train (the trainer refuses the same)")
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"finer_mini_supervised_ceiling: error: {err}", file=sys.stderr)
        return 2
    if args.work:
        return _run(config, pairs, settings, Path(args.work), Path(args.out), args)
    with tempfile.TemporaryDirectory(prefix="supervised_ceiling-") as work:
        return _run(config, pairs, settings, Path(work), Path(args.out), args)


def _run(config: Any, pairs: list[tuple[str, str]], settings: list[Any], work: Path, out: Path,
         args: argparse.Namespace) -> int:
    """Validate the base, then fine-tune and validate once per entry of ``settings``; write ``out``."""
    from resd_learner.precision import resolve_dtype
    from resd_learner.summary import paired_bootstrap

    dtype = resolve_dtype(config.model.dtype)[0]
    base = run_base_model(config)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"base model {base}; validation of the base", file=sys.stderr, flush=True)
    base_scores = validation_scores(config, base, dtype)
    rows: list[dict[str, Any]] = [{"model": "base (warm start)", "lr": None, "score": sum(base_scores) / len(base_scores),
                                   "change": 0.0, "ci": None, "train_s": 0.0}]
    per_prompt = {"base": base_scores}
    for setting in settings:
        lr = setting.lr
        model_dir = work / f"gold_sft_lr{lr:g}"
        stats = train_format(base, pairs, setting, model_dir)
        scores = validation_scores(config, model_dir, dtype)
        change, low, high = paired_bootstrap(base_scores, scores)
        rows.append({"model": "gold fine-tune", "lr": lr, "score": sum(scores) / len(scores), "change": change,
                     "ci": [low, high], "train_s": stats["seconds"], "steps": stats["steps"],
                     "loss_first": stats["loss_first"], "loss_last": stats["loss_last"]})
        per_prompt[f"gold_sft_lr{lr:g}"] = scores
        print(f"lr {lr:g}: {rows[0]['score']:.3f} -> {rows[-1]['score']:.3f} ({change:+.3f} [{low:+.3f}, {high:+.3f}])",
              file=sys.stderr, flush=True)

    lines = [f"held-out per-test-case mean@{config.eval.n} on {len(base_scores)} prompts, "
             f"{len(pairs)} training prompts, {len(pairs) // config.train.batch_size} steps of "
             f"{config.train.batch_size}, dtype {dtype}", "",
             "| model | lr | held-out | change | 95% paired bootstrap CI | loss first -> last | train s |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        ci = f"[{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]" if row["ci"] else "-"
        loss = f"{row['loss_first']:.3f} -> {row['loss_last']:.3f}" if "loss_first" in row else "-"
        lr = "-" if row["lr"] is None else f"{row['lr']:g}"
        lines.append(f"| {row['model']} | {lr} | {row['score']:.3f} | {row['change']:+.3f} | {ci} | {loss} | "
                     f"{row['train_s']:.0f} |")
    lines += ["", f"wall time {(time.perf_counter() - started) / 60:.1f} min"]
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "output.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"config": args.config, "overrides": args.overrides,
                                                  "base_model": str(base.name), "rows": rows,
                                                  "per_prompt": per_prompt}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

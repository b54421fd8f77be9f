"""``resd-learn``: train with RESD (or a baseline) from a YAML config plus ``key.sub=value`` overrides.

Examples::

    resd-learn --config configs/quickstart.yaml
    resd-learn --config configs/manufactoria_has_resd.yaml train.batch_size=8 optim.lr=2e-6
    resd-learn --config configs/smoke.yaml --print-config
    resd-learn --resume runs/quickstart            # continue from the newest checkpoint
    resd-learn --config configs/smoke.yaml --overwrite   # delete runs/smoke and start again

A new run never writes into a directory that already holds a run unless ``--overwrite`` is given;
``--resume`` of a finished run says so and exits without loading a model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import yaml

from resd_learner import distributed
from resd_learner.checkpoint import RunDirExistsError, check_new_run_dir, finished_run, latest_checkpoint
from resd_learner.config import RunConfig, RunConfigError, apply_overrides, config_from_dict, dump_yaml, load_config
from resd_learner.models import model_path_problem
from resd_learner.precision import resolve_dtype, with_dtype
from resd_learner.rollout.nucleus import resolve_top_p_impl
from resd_learner.task_sources import env_problems


def resolve_auto_settings(config: RunConfig) -> tuple[RunConfig, list[str]]:
    """``(config, lines)``: ``config`` with every ``auto`` setting this machine decides replaced by its value.

    Resolved here: ``model.dtype`` (bf16 where the CPU computes it, else float32; see
    :mod:`resd_learner.precision`) and, for the vLLM backend, ``rollout.top_p_impl``. ``lines`` says, one
    line per setting, what ``auto`` became and why, and when ``optim.lr_scale_float32`` changes the lr (the
    trainer applies it; the config keeps ``optim.lr``). The run's ``config.yaml`` stores the resolved values,
    so anything comparing a finished run's settings with a new invocation's resolves the same way.
    """
    lines: list[str] = []
    if config.model.dtype == "auto":
        dtype, why = resolve_dtype("auto")
        lines.append(f"model.dtype=auto -> {dtype} ({why})")
        config = with_dtype(config, dtype)
    if config.optim.lr_scale_float32 != 1.0 and config.model.dtype == "float32":
        lines.append(f"optim.lr_scale_float32={config.optim.lr_scale_float32:g} -> lr "
                     f"{config.optim.lr_for('float32'):g} (optim.lr {config.optim.lr:g}; "
                     "the student computes in float32)")
    if config.rollout.backend == "vllm" and config.rollout.top_p_impl == "auto":
        impl, why = resolve_top_p_impl("auto", on_gpu=distributed.has_cuda())
        lines.append(f"rollout.top_p_impl=auto -> {impl} ({why})")
        config = dataclasses.replace(config, rollout=dataclasses.replace(config.rollout, top_p_impl=impl))
    return config, lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resd-learn",
        description="Train a model with Reflection-Enhanced Self-Distillation (or SDPO / SDPO+ss / GRPO).",
        epilog="Overrides are key.sub=value pairs, e.g. train.batch_size=8 rollout.backend=hf",
    )
    parser.add_argument("--config", help="YAML run config (see configs/)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run already in train.run_dir and start a new one there")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    return parser


def resolve(args: argparse.Namespace):
    """(config, checkpoint to resume from or None) for the parsed arguments."""
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"--resume {run_dir}: no config.yaml there; is it a resd-learn run directory?")
        problems: list[str] = []
        data = apply_overrides(yaml.safe_load(saved.read_text(encoding="utf-8")) or {}, args.overrides, problems)
        data.setdefault("train", {})["run_dir"] = str(run_dir)
        if problems:
            raise RunConfigError(problems, str(saved))
        config = config_from_dict(data)
        checkpoint = latest_checkpoint(run_dir / "checkpoints")
        if checkpoint is None:
            raise FileNotFoundError(f"--resume {run_dir}: no complete checkpoint under {run_dir / 'checkpoints'}")
        return config, checkpoint
    if not args.config:
        raise RunConfigError(["give --config configs/<name>.yaml (or --resume RUN_DIR)"])
    return load_config(args.config, args.overrides), None


def preflight_problems(config: RunConfig) -> list[str]:
    """Problems found before any model loads: the env (id, text spaces, required counts) and the model path."""
    problems = env_problems(config.env)
    model = model_path_problem(config.model.path)
    return problems + ([model] if model else [])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config, checkpoint = resolve(args)
    except (RunConfigError, FileNotFoundError) as exc:
        print(f"resd-learn: {exc}", file=sys.stderr)
        return 2
    problems = preflight_problems(config)
    if problems:
        print(f"resd-learn: {RunConfigError(problems)}", file=sys.stderr)
        return 2
    config, resolutions = resolve_auto_settings(config)
    if os.environ.get("RANK", "0") == "0":  # before the process group exists: one line per job
        for line in resolutions:
            print(f"resd-learn: {line}", file=sys.stderr)
    if args.print_config:
        print(dump_yaml(config), end="")
        return 0
    if checkpoint is None:
        try:  # read-only here (every rank); the main rank deletes an overwritten run in Trainer.fit
            check_new_run_dir(config.train.run_dir, overwrite=args.overwrite)
        except RunDirExistsError as exc:
            print(f"resd-learn: {exc}", file=sys.stderr)
            return 2
    else:
        finished = finished_run(config.train.run_dir)
        if finished is not None:
            print(f"resd-learn: the run in {config.train.run_dir} is finished ({finished[0]} steps, last checkpoint "
                  f"{finished[1]}); nothing to resume. Start a new run with --config ... train.run_dir=NEW_DIR",
                  file=sys.stderr)
            return 0
    from resd_learner.trainer import Trainer  # transformers and DeepSpeed: not needed before this point

    trainer = Trainer(config)
    try:
        last = trainer.fit(resume_from=checkpoint, overwrite=args.overwrite)
    finally:
        trainer.close()
    main_rank = distributed.is_main()
    if distributed.world_size() > 1:  # a launcher job: every rank leaves the groups before exiting
        trainer.engine.destroy()
        distributed.shutdown()
    if not main_rank:
        return 0
    print(f"resd-learn: finished {trainer.global_step} steps; outputs in {trainer.run_dir}")
    if last:
        shown = {k: last[k] for k in ("rollout/reward_mean", "loss/distill", "context/playbook_size") if k in last}
        print(f"resd-learn: last step {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The teacher's forward over one step's teacher sequences, whole vs with the shared prefix computed once.

Every teacher sequence of a step starts with the same tokens (chat header, teacher instructions and
whatever fixed opening the task prompts have: full Finer's prompts open with the 139-tag list).
``teacher.share_prefix`` computes that prefix's keys/values once per teacher version. This benchmark
builds a step's teacher sequences with the trainer's own code (the config's method and teacher
template; the first ``--prompts`` training tasks; each answered with ``--response`` and scored by the
env, so failures carry the env's privileged feedback), then times, in this process and in turns
(``--repeats`` rounds of whole, then shared), the teacher forward one micro-batch at a time (the
trainer's ``train.micro_batch_size``), as the trainer runs it. It prints the prefix length, the
seconds of each pass, the ratio of the means (both measured here), and the largest difference between
the two passes' hidden states at the response positions.

    python benchmarks/teacher_shared_prefix.py [--config configs/quickstart.yaml] [--prompts 16]
        [--repeats 2] [--response '<answer>None</answer>'] [--json] [overrides ...]

The model is the config's model before any warm start (the forward's cost does not depend on the
weights' values).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from resd_learner.batch import build_teacher_items, choose_demonstrations, pack_teacher, sample_views, \
    teacher_shared_prefix
from resd_learner.config import load_config
from resd_learner.models import load_student, load_tokenizer, resolve_model_path
from resd_learner.precision import resolve_dtype
from resd_learner.rollout.base import render_prompt_ids
from resd_learner.task_sources import make_task_source
from resd_learner.teacher import EmaTeacher
from resd_learner.types import Sample


def build_items(config, tokenizer, prompts: int, response: str):
    """The teacher items of one step whose every rollout is ``response``."""
    source = make_task_source(config.env)
    tasks = source.tasks(config.env.train_split, prompts)
    scores = source.score(tasks, [response] * len(tasks))
    response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    samples = [Sample(task=task, group_index=0, prompt_ids=render_prompt_ids(tokenizer, task.messages),
                      response_ids=response_ids, response_text=response, finish_reason="stop", score=score)
               for task, score in zip(tasks, scores)]
    method = config.method
    views = sample_views(samples, method.success_threshold)
    solutions = choose_demonstrations(views, method)
    return build_teacher_items(samples, views, method=method, tokenizer=tokenizer, solutions=solutions)


def teacher_pass(teacher: EmaTeacher, chunks, pad: int, shared_prefix: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds of the teacher forward over every chunk, and the hidden states at the response positions."""
    outputs = []
    start = time.perf_counter()
    for chunk in chunks:
        packed = pack_teacher(chunk, pad)
        hidden, _ = teacher.response_hidden(packed.ids, packed.attention, packed.positions,
                                            shared_prefix=shared_prefix)
        outputs.append(hidden[packed.mask.bool()].float())
    return time.perf_counter() - start, outputs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--prompts", type=int, default=16, help="training tasks in the step (the split's first)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (whole, shared)")
    parser.add_argument("--response", default="<answer>None</answer>", help="every rollout's text")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args(argv)
    if args.prompts < 2:
        parser.error(f"--prompts={args.prompts}: a prefix is shared by at least 2 sequences")
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats}: use at least 1 round")

    config = load_config(args.config, args.overrides)
    if not config.method.uses_teacher:
        parser.error(f"method.name={config.method.name!r} has no teacher; benchmark resd, sdpo or sdpo_ss")
    dtype, _why = resolve_dtype(config.model.dtype)
    model_dir = resolve_model_path(config.model.path, config.model.cache_dir)
    tokenizer = load_tokenizer(model_dir)
    items = [it for it in build_items(config, tokenizer, args.prompts, args.response) if it.distill]
    if len(items) < 2:
        raise SystemExit(f"only {len(items)} of the {args.prompts} rollouts are distilled (a teacher needs a "
                         "privileged signal); pick a --response the env marks wrong")
    prefix = teacher_shared_prefix(items)
    micro = config.train.micro_batch_size
    chunks = [items[i:i + micro] for i in range(0, len(items), micro)]
    compute = torch.bfloat16 if dtype == "bfloat16" else None
    teacher = EmaTeacher(load_student(model_dir, dtype=dtype), rate=0.0, compute_dtype=compute)
    pad = tokenizer.pad_token_id or 0

    times: dict[str, list[float]] = {"whole": [], "shared": []}
    whole_hidden = shared_hidden = None
    for _ in range(args.repeats):
        seconds, whole_hidden = teacher_pass(teacher, chunks, pad, 0)
        times["whole"].append(seconds)
        seconds, shared_hidden = teacher_pass(teacher, chunks, pad, prefix)
        times["shared"].append(seconds)
    diff = max(float((a - b).abs().max()) for a, b in zip(whole_hidden, shared_hidden))
    scale = max(float(a.abs().max()) for a in whole_hidden)
    lengths = [len(it.teacher_ids) for it in items]
    means = {k: sum(v) / len(v) for k, v in times.items()}
    result = {"env": config.env.id, "method": config.method.name, "dtype": dtype, "sequences": len(items),
              "micro_batch_size": micro, "mean_teacher_tokens": round(sum(lengths) / len(lengths), 1),
              "shared_prefix_tokens": prefix, "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
              "speedup": round(means["whole"] / means["shared"], 3), "max_abs_diff": diff, "max_abs_hidden": scale}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{config.env.id}, {config.method.name}, {dtype}: {len(items)} teacher sequences of "
              f"{result['mean_teacher_tokens']} tokens on average, micro-batches of {micro}; shared prefix "
              f"{prefix} tokens")
        for name, values in times.items():
            print(f"  {name:>6}: " + ", ".join(f"{x:.2f} s" for x in values))
        print(f"  shared prefix: {result['speedup']:.2f}x the speed of the whole forward (same process); "
              f"largest hidden-state difference {diff:.2e} (largest |hidden| {scale:.1f})")
    return result


if __name__ == "__main__":
    main()

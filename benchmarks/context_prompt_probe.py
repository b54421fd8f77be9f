"""Does another format instruction make SmolLM2-135M write playbook lessons? Replays recorded failures.

The quickstart's playbook stays empty because the 135M model copies the format example of the
reflector and curator prompts ("your step-by-step", "the lesson") and those echoes are dropped. This
probe asks whether the example is the cause. It replays the rollouts of the first ``--steps`` steps
of a quickstart run directory (its ``records/``) through the context updater with the run's own
context settings (JSON schemas, ``context.temperature``, echoes and non-lessons dropped) and the
feedback the trainer showed (the env's privileged feedback, which names the gold tag), once per
variant of the prompts' reply-format block (the ``official`` ``context.prompt_layout``, where it closes
the prompt):

- ``official``: the shipped prompts (a JSON example whose values describe each field);
- ``keys_only``: the same instructions, the example replaced by a sentence listing the keys, so
  there is no value to copy (the schema still fixes the shape);
- ``worked_example``: the example filled in for an unrelated task (a unit conversion), with the
  request to write about this attempt instead;
- ``extractive``: the shipped prompts with ``context.extractive_lessons`` on (the schema restricts
  ``key_insight`` and each addition to clauses of the attempt's feedback; ``context/extractive.py``).

For each variant it prints the updater's counters, the distinct texts of the reflections'
``key_insight`` field and the distinct curator additions with how often each was proposed, and the
playbook at the end. The student weights are the run's base model (no training happens here).

    python benchmarks/context_prompt_probe.py results/learning_cpu/quickstart_avx2_fp32 --steps 2
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

KEYS_ONLY_REFLECTOR = (
    'Reply with a single JSON object and nothing else. Its keys are "reasoning", "error_identification", '
    '"root_cause_analysis", "correct_approach" and "key_insight", each a string you write about this '
    'attempt in your own words, and "bullet_tags", a list of {{"id", "tag"}} pairs for playbook ids (empty '
    "when no entry applies).\n"
)
KEYS_ONLY_CURATOR = (
    'Reply with a single JSON object and nothing else. Its keys are "reasoning", a string, and "operations", '
    'a list of additions, each {{"type": "ADD", "section", "content"}} where section is one of the valid '
    "sections and content is the new lesson as one complete sentence in your own words.\n"
)
WORKED_REFLECTOR = """\
Reply with a single JSON object and nothing else. This is its shape, filled in for an unrelated task (a \
unit conversion answered in the wrong unit); write your own text about THIS attempt:
{{
  "reasoning": "The task asked for centimetres and the attempt gave 12 inches.",
  "error_identification": "The answer used the unit of the input instead of the unit asked for.",
  "root_cause_analysis": "The attempt skipped reading the last line of the question.",
  "correct_approach": "Convert 12 inches to 30.48 centimetres and report that.",
  "key_insight": "Answer in the unit the question names, not the unit of the data.",
  "bullet_tags": []
}}
"""
WORKED_CURATOR = """\
Reply with a single JSON object and nothing else. This is its shape, filled in for an unrelated \
reflection (a unit conversion answered in the wrong unit); write your own lesson from THIS reflection:
{{
  "reasoning": "The playbook has no rule about units yet.",
  "operations": [
    {{"type": "ADD", "section": "common_mistakes_to_avoid", "content": "Answer in the unit the question names, not the unit of the data."}}
  ]
}}
"""
VARIANTS = ("official", "keys_only", "worked_example", "extractive")


def variant_templates(variant: str) -> tuple[str, str]:
    """(reflector template, curator template) of ``variant``: the shipped ones with their reply-format
    block (``REFLECTOR_FORMAT`` / ``CURATOR_FORMAT``) replaced (``official`` returns them unchanged)."""
    from resd_learner.context.prompts.curator import CURATOR_FORMAT, CURATOR_TEMPLATE
    from resd_learner.context.prompts.reflector import REFLECTOR_FORMAT, REFLECTOR_TEMPLATE

    if variant in ("official", "extractive"):
        return REFLECTOR_TEMPLATE, CURATOR_TEMPLATE
    formats = {"keys_only": (KEYS_ONLY_REFLECTOR, KEYS_ONLY_CURATOR), "worked_example": (WORKED_REFLECTOR, WORKED_CURATOR)}
    if variant not in formats:
        raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
    out = []
    for (name, template, block), replacement in zip((("reflector", REFLECTOR_TEMPLATE, REFLECTOR_FORMAT),
                                                      ("curator", CURATOR_TEMPLATE, CURATOR_FORMAT)), formats[variant]):
        if template.count(block) != 1:
            raise ValueError(f"the {name} prompt no longer holds its format block once; update this probe")
        out.append(template.replace(block, replacement))
    return out[0], out[1]


def recorded_rollouts(run_dir: Path, step: int) -> list[dict[str, Any]]:
    """The rollout records of ``step`` in ``run_dir/records`` (raises FileNotFoundError when absent)."""
    path = run_dir / "records" / f"step_{step:06d}.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give a run directory written with per-step records")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [row for row in map(json.loads, handle) if row.get("type") == "rollout"]


def probe(variant: str, config: Any, backend: Any, source: Any, run_dir: Path, steps: int) -> dict[str, Any]:
    """Replay ``steps`` recorded steps through a fresh context updater under ``variant``'s prompts."""
    import resd_learner.context.curate as curate_module
    import resd_learner.context.reflect as reflect_module
    from resd_learner.context import SampleView
    from resd_learner.context.schemas import generation_cap
    from resd_learner.context.updater import ContextUpdater
    from resd_learner.rollout.base import schemas_per_chat

    reflector_text, curator_text = variant_templates(variant)  # in the official layout, which this probe replays
    reflect_module.REFLECTOR_TEMPLATES = {**reflect_module.REFLECTOR_TEMPLATES, "official": reflector_text}
    curate_module.CURATOR_TEMPLATES = {**curate_module.CURATOR_TEMPLATES, "official": curator_text}
    tasks = {task.example_id: task for task in source.tasks(config.env.train_split, config.env.num_train)}
    step_seed = {"step": 0, "call": 0}

    def generate(chats: list[list[dict[str, str]]], schema: Any = None) -> list[str]:
        step_seed["call"] += 1
        gens = backend.generate(chats, n=1, temperature=config.context.temperature, top_p=config.rollout.top_p,
                                max_tokens=generation_cap(config.context.max_reflection_tokens,
                                                          schemas_per_chat(schema, len(chats))),
                                seed=1000 * step_seed["step"] + step_seed["call"], schema=schema)
        return [g[0].text for g in gens]

    context = dataclasses.replace(config.context, extractive_lessons=variant == "extractive",
                                  prompt_layout="official")
    updater = ContextUpdater(context, generate, seed=config.train.seed, supports_schema=True)
    totals: Counter[str] = Counter()
    insights: Counter[str] = Counter()
    additions: Counter[str] = Counter()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        step_seed.update(step=step, call=0)
        rows = recorded_rollouts(run_dir, step)
        picked = [tasks[row["example_id"]] for row in rows]
        scores = source.score(picked, [row["response"] for row in rows])
        samples = [SampleView(example_id=row["example_id"], group_index=row["group_index"], prompt=task.prompt,
                              response=row["response"], reward=score.reward,
                              success=score.reward >= config.method.success_threshold,
                              feedback=score.context_feedback, policy_feedback=score.feedback)
                   for row, task, score in zip(rows, picked, scores)]
        update = updater.update(step, samples)
        totals.update({k: int(v) for k, v in update.stats.items() if not k.startswith("total/") and
                       k not in ("playbook_size", "solution_buffer_size")})
        for output in update.outputs:
            if output["kind"] == "reflection":
                try:
                    insights[str(json.loads(output["text"]).get("key_insight", ""))] += 1
                except (json.JSONDecodeError, AttributeError):
                    insights["(unparsed)"] += 1
            elif output["kind"] == "curation":
                additions.update(op["content"] for op in output.get("operations", []))
    return {"variant": variant, "seconds": round(time.perf_counter() - start, 1), "counters": dict(totals),
            "key_insights": insights.most_common(), "additions": additions.most_common(),
            "playbook": [line for line in updater.playbook.render().splitlines() if line.startswith("[")]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a quickstart run directory with records/ (its config.yaml is used)")
    parser.add_argument("--steps", type=int, default=2, help="recorded steps to replay (from step 1)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-reflection-tokens", type=int,
                        help="override the run's context.max_reflection_tokens (the reflector/curator cap)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    from resd_learner.config import load_config
    from resd_learner.models import load_tokenizer
    from resd_learner.precision import with_resolved_dtype
    from resd_learner.rollout import make_backend
    from resd_learner.task_sources import make_task_source
    from resd_learner.warm_start import run_base_model

    config = with_resolved_dtype(load_config(args.run_dir / "config.yaml"))
    if args.max_reflection_tokens is not None:
        config = dataclasses.replace(config, context=dataclasses.replace(
            config.context, max_reflection_tokens=args.max_reflection_tokens))
    model_dir = run_base_model(config)
    backend = make_backend(config.rollout, model_dir, load_tokenizer(model_dir), dtype=config.model.dtype,
                           seed=config.train.seed)
    source = make_task_source(config.env)
    results = []
    for variant in args.variants:
        result = probe(variant, config, backend, source, args.run_dir, args.steps)
        results.append(result)
        print(f"== {variant}: {result['seconds']} s, {args.steps} recorded steps, dtype {config.model.dtype}")
        print("   counters:", ", ".join(f"{k}={v}" for k, v in sorted(result["counters"].items()) if v))
        print("   key_insight texts (count):", "; ".join(f"{t!r} x{n}" for t, n in result["key_insights"][:6]))
        print("   curator additions (count):", "; ".join(f"{t!r} x{n}" for t, n in result["additions"][:8]))
        print("   playbook at the end:", " | ".join(result["playbook"]) or "(no entries)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

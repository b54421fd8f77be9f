"""Parse rate of reflector and curator outputs, free-form vs schema-constrained, on real failures.

Takes the first ``--prompts`` train prompts of an env, samples one response each with the model
(``--response-tokens``), scores them, and runs one context update (reflect on every failure, then
curate) twice on the same failures: with ``context.structured_output=off`` (the official free-form
generation, read by the lenient parser) and ``on`` (JSON-schema-constrained generation). Prints, per
mode, how many reflections parsed, how many curator outputs were valid, the entries added and the
seconds taken.

    python benchmarks/context_parse.py --model smollm2 --env resd/Manufactoria-Has-v0 --prompts 8 \
        --reflection-tokens 128 --response-tokens 32
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="model.path value (smollm2, tiny or a directory)")
    parser.add_argument("--env", default="resd/Manufactoria-Has-v0")
    parser.add_argument("--split", default="train")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--response-tokens", type=int, default=64)
    parser.add_argument("--reflection-tokens", type=int, default=256,
                        help="context.max_reflection_tokens (the quickstart uses 64)")
    parser.add_argument("--backend", default="vllm", choices=("vllm", "hf"))
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=["off", "on"], choices=("off", "on"),
                        help="structured_output modes to measure (the rollouts are the same for a seed)")
    args = parser.parse_args(argv)

    import resd_envs
    from resd_learner.config import RolloutConfig
    from resd_learner.context import SampleView
    from resd_learner.models import load_tokenizer, resolve_model_path
    from resd_learner.rollout import make_backend

    model_dir = resolve_model_path(args.model)
    tokenizer = load_tokenizer(model_dir)
    backend = make_backend(RolloutConfig(backend=args.backend, max_model_len=args.max_model_len), model_dir,
                           tokenizer, seed=args.seed)
    rows = resd_envs.load_tasks(args.env, args.split)[: args.prompts]
    chats = [[{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]] for row in rows]
    start = time.perf_counter()
    responses = [g[0].text for g in backend.generate(chats, n=1, temperature=1.0, top_p=0.95,
                                                      max_tokens=args.response_tokens, seed=args.seed)]
    results = resd_envs.verify(args.env, [str(r["task_id"]) for r in rows], responses)
    views = [SampleView(example_id=str(row["task_id"]), group_index=0, prompt=chat[-1]["content"], response=text,
                        reward=float(res.reward), success=bool(res.passed), feedback=res.feedback or "")
             for row, chat, text, res in zip(rows, chats, responses, results)]
    failures = sum(not v.success for v in views)
    print(f"{args.env}: {len(views)} prompts, {failures} failures, rollout {time.perf_counter() - start:.0f} s")
    for mode in args.modes:
        print(_measure(backend, views, mode, args))


def _measure(backend: Any, views: list[Any], mode: str, args: argparse.Namespace) -> str:
    from resd_learner.context import ContextConfig, ContextUpdater

    calls = 0

    def generate(batch: list[list[dict[str, str]]], schema: dict | None = None) -> list[str]:
        nonlocal calls
        calls += 1
        extra = {"schema": schema} if schema is not None else {}
        gens = backend.generate(batch, n=1, temperature=1.0, top_p=0.95, max_tokens=args.reflection_tokens,
                                seed=args.seed + calls, **extra)
        return [g[0].text for g in gens]

    config = ContextConfig(structured_output=mode, max_reflection_tokens=args.reflection_tokens,
                           playbook_budget=200)
    updater = ContextUpdater(config, generate, seed=args.seed, supports_schema=backend.supports_schema)
    start = time.perf_counter()
    stats = updater.update(1, views).stats
    seconds = time.perf_counter() - start
    reflected = int(stats["reflections"] + stats["reflections_empty"])
    parsed = reflected - int(stats["reflections_malformed"])
    curated = int(stats["curations_applied"] + stats["curations_failed"])
    return (f"structured_output={mode}: reflections parsed {parsed}/{reflected}, curator outputs valid "
            f"{int(stats['curations_applied'])}/{curated}, entries added {int(stats['entries_added'])}, "
            f"{seconds:.0f} s")


if __name__ == "__main__":
    main()

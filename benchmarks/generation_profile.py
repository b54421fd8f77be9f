"""Where the quickstart's vLLM time goes on this CPU: the validation pass by kernel, and the context step.

Two measurements with the quickstart's own model (the cached warm start), settings and prompts:

1. **Validation** (``eval.n`` completions for each of ``--prompts`` FinerMini test prompts, the eval
   sampling settings) under ``cProfile``; the time inside the engine's kernels is summed into the
   model's matrix multiplies (oneDNN), the sampler's top-p filter (vLLM's own sorts every row of
   logits vocabulary-wide at every decoding step; ``rollout.top_p_impl``, auto = the partial filter
   on CPU, selects each row's 256 largest instead), paged attention, and the rest.
2. **Reflections**: the reflector prompts of the first ``--reflections`` failed validation tasks
   (one failed sample each, as in a training step, whose chats share the template but not the task),
   in each ``context.prompt_layout`` (``official``: the sample first; ``shared_first``: instructions,
   reply format and playbook first), generated under the reflection JSON schema with the context
   settings: after ``reset_prefix_cache()`` (what every training step meets, since a weight push must
   drop keys and values computed with the old weights), again with those prompts cached, and as a
   prefill alone (one token) after another reset; the difference says how much of a context step is
   prompt prefill rather than writing. Then the same prefill with nothing shared between the prompts
   (each chat starts with its own number, so the prefix cache finds no common block), which shows
   what the prompts' common opening (its length in tokens is printed) saves. The first schema call of
   each layout (the grammar compilation on the first) runs before these, as a warm-up. The playbook in
   those prompts is empty unless ``--playbook`` names one a run saved (``RUN_DIR/records/playbook_<N>.md``,
   the text the reflector reads); its entry ids then go into the reflection schema.

All seconds are measured in this process, one after another; nothing else should run beside it.

    python benchmarks/generation_profile.py [--config configs/quickstart.yaml] [--prompts 128]
        [--reflections 13] [--playbook RUN_DIR/records/playbook_000008.md] [--json] [overrides ...]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import re
import time
from pathlib import Path

from quickstart_setup import load_validation
from resd_learner.context import schemas
from resd_learner.context.config import PROMPT_LAYOUTS
from resd_learner.context.reflect import reflector_messages
from resd_learner.context.types import SampleView

KERNELS = {  # substring of a profiled function's name -> bucket
    "onednn_mm": "matrix multiplies (oneDNN)",
    "method 'sort'": "top-p filter (sampler)",  # vLLM's own filter (rollout.top_p_impl=vllm): a full sort
    "method 'topk'": "top-p filter (sampler)",  # the partial filter (rollout.nucleus): a partial selection
    "cpu_attention": "attention",
}


def _buckets(profile: cProfile.Profile) -> dict[str, float]:
    """Own time of the profiled functions, summed by :data:`KERNELS` (the rest under "other")."""
    sums = {name: 0.0 for name in KERNELS.values()}
    sums["other"] = 0.0
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in pstats.Stats(profile).stats.items():
        label = f"{filename}:{function}"
        bucket = next((b for key, b in KERNELS.items() if key in label), "other")
        sums[bucket] += own
    return {k: round(v, 2) for k, v in sums.items()}


def _one_per_task(samples: list) -> list:
    """The first sample of each task, in order: a training step reflects on ``rollout.n`` = 1 sample of each of
    its prompts, so its reflector prompts share only the template, not the task text (validation's ``eval.n``
    samples of one task would share their task's tokens in the prefix cache, a cheaper batch)."""
    seen: set[str] = set()
    first = []
    for sample in samples:
        if sample.task.example_id not in seen:
            seen.add(sample.task.example_id)
            first.append(sample)
    return first


_ENTRY_ID = re.compile(r"^\[([^\]\s]+)\] helpful=\d+ harmful=\d+ :: ", re.MULTILINE)
"""An entry line of a rendered playbook (:meth:`resd_learner.context.playbook.PlaybookEntry.render`)."""


def read_playbook(path: str | None) -> tuple[str, list[str]]:
    """The rendered playbook saved at ``path`` and its entry ids, in order; ``("", [])`` for None.

    Raises:
        SystemExit: the file is missing, is not UTF-8 text, or holds text but no entry line (not a saved
            playbook).
    """
    if path is None:
        return "", []
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"--playbook {path}: no such file; pass a playbook a run saved, RUN_DIR/records/playbook_<N>.md")
    try:
        text = file.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise SystemExit(f"--playbook {path}: not UTF-8 text ({exc.reason} at byte {exc.start}); pass a playbook "
                         "a run saved, RUN_DIR/records/playbook_<N>.md") from None
    ids = _ENTRY_ID.findall(text)
    if text and not ids:
        raise SystemExit(f"--playbook {path}: no entry line ('[id] helpful=H harmful=N :: text'); pass a playbook "
                         "a run saved, RUN_DIR/records/playbook_<N>.md")
    return text, ids


def _common_prefix_length(sequences: list[list[int]]) -> int:
    """How many leading token ids every sequence has in common."""
    first, length = sequences[0], min(map(len, sequences))
    return next((i for i in range(length) if any(seq[i] != first[i] for seq in sequences)), length)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--prompts", type=int, default=128, help="validation prompts (the split's first)")
    parser.add_argument("--reflections", type=int, default=13,
                        help="failed samples to reflect on (the quickstart's steps had 10-14)")
    parser.add_argument("--playbook", default=None,
                        help="a playbook a run saved (RUN_DIR/records/playbook_<N>.md) for the reflector prompts; default: empty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.reflections < 1:
        parser.error("--prompts and --reflections must be at least 1")
    playbook, entry_ids = read_playbook(args.playbook)  # a bad file fails before the model loads

    setup = load_validation(args.config, args.overrides, args.prompts)
    config, dtype, tokenizer, tasks = setup.config, setup.dtype, setup.tokenizer, setup.tasks
    backend = setup.backend(args.seed)
    ev, ctx = config.eval, config.context

    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    samples = setup.sample(backend, args.seed)
    profile.disable()
    validation = {"seconds": round(time.perf_counter() - start, 2), "samples": len(samples),
                  "generated_tokens": sum(len(s.response_ids) for s in samples), "kernels": _buckets(profile)}

    failed = _one_per_task([s for s in samples if s.score is not None and s.reward < config.method.success_threshold])
    views = [SampleView(example_id=s.task.example_id, group_index=s.group_index, prompt=s.task.prompt,
                        response=s.response_text, reward=s.reward, success=False,
                        feedback=s.score.context_feedback, policy_feedback=s.score.feedback)
             for s in failed[: args.reflections]]
    schema = schemas.reflection_schema(entry_ids, max_tokens=ctx.max_reflection_tokens)
    cap = schemas.generation_cap(ctx.max_reflection_tokens, [schema])
    temperature = config.rollout.temperature if ctx.temperature is None else ctx.temperature

    def reflect(chats: list, max_tokens: int, *, reset: bool, seed: int) -> tuple[float, int]:
        if reset:
            backend.llm.reset_prefix_cache()
        began = time.perf_counter()
        gens = backend.generate(chats, n=1, temperature=temperature, top_p=config.rollout.top_p,
                                max_tokens=max_tokens, seed=seed, schema=schema)
        return round(time.perf_counter() - began, 2), sum(len(g[0].token_ids) for g in gens)

    reflections = {}
    for layout in PROMPT_LAYOUTS:
        chats = [reflector_messages(v, playbook, max_slot_chars=ctx.max_slot_chars, layout=layout) for v in views]
        reflect(chats, cap, reset=True, seed=1)  # warm-up: the grammar compiles on the first schema call
        after_reset, tokens = reflect(chats, cap, reset=True, seed=2)
        cached, _ = reflect(chats, cap, reset=False, seed=2)
        prefill, _ = reflect(chats, 1, reset=True, seed=2)
        unshared_chats = [[{**m, "content": f"({k}) " + m["content"]} if i == 0 else m for i, m in enumerate(chat)]
                          for k, chat in enumerate(chats)]
        unshared, _ = reflect(unshared_chats, 1, reset=True, seed=2)
        ids = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
               for c in chats]
        reflections[layout] = {"chats": len(chats), "prompt_tokens": sum(map(len, ids)), "generated_tokens": tokens,
                               "shared_prefix_tokens": _common_prefix_length(ids),
                               "seconds_after_reset": after_reset, "seconds_prompts_cached": cached,
                               "seconds_prefill_only_after_reset": prefill, "seconds_prefill_nothing_shared": unshared}
    result = {"dtype": dtype, "playbook_entries": len(entry_ids), "validation": validation, "reflections": reflections}
    if args.json:
        print(json.dumps(result))
        return result
    v = validation
    print(f"validation: {len(tasks)} prompts x n={ev.n}, {dtype}: {v['seconds']:.1f} s, "
          f"{v['generated_tokens']} tokens generated")
    for name, seconds in v["kernels"].items():
        print(f"  {name:<28} {seconds:7.1f} s  ({seconds / v['seconds']:.0%})")
    for layout, r in reflections.items():
        print(f"reflections, context.prompt_layout={layout}: {r['chats']} prompts, one failed sample of each task "
              f"({r['prompt_tokens']} prompt tokens, all opening with the same {r['shared_prefix_tokens']}), "
              f"{r['generated_tokens']} tokens written under the schema; playbook of {len(entry_ids)} entries")
        print(f"  after a prefix-cache reset  {r['seconds_after_reset']:7.1f} s")
        print(f"  the same, prompts cached    {r['seconds_prompts_cached']:7.1f} s")
        print(f"  prefill alone, after reset  {r['seconds_prefill_only_after_reset']:7.1f} s")
        print(f"  the same, nothing shared    {r['seconds_prefill_nothing_shared']:7.1f} s")
    first, second = (reflections[layout]["seconds_prefill_only_after_reset"] for layout in PROMPT_LAYOUTS)
    print(f"prefill after a reset, {PROMPT_LAYOUTS[1]} against {PROMPT_LAYOUTS[0]} (this process): {first / second:.2f}x faster")
    return result


if __name__ == "__main__":
    main()

"""Where does the self-teacher put its mass at FinerMini's deciding token? A probe over one step of a run.

For every rollout recorded at ``--step`` of a FinerMini run (``RUN_DIR/records/step_<step>.jsonl.gz``),
the base model (the quickstart's warm-started SmolLM2, or ``--model``) scores the rollout's own
response under the student prompt and under several teacher contexts built from that step's records:

- ``resd_official``: the RESD teacher prompt as the run recorded it when the run used the official
  layout (previous trial included), else rebuilt with it;
- ``resd_no_previous_trial``: the same without the PREVIOUS TRIAL section (``method.use_previous_trial: false``);
- ``resd_no_previous_trial_no_reflection``, ``resd_no_previous_trial_no_playbook``, ``resd_feedback_only``;
- ``sdpo``: the SDPO teacher prompt (prompt + feedback, or the own success as the demonstration).

With ``--layouts official task_last`` every RESD context is also built in the ``task_last`` teacher
layout (``method.teacher_layout``: the task after the other sections), named ``CONTEXT[task_last]``.

Each teacher context is built twice for a failure, once per way of naming the gold tag in the privileged
feedback (``--gold-as``): ``sentence`` (FinerMini's default, "The correct tag is TAG.") and ``reply``
(its ``gold_feedback="reply"``: "The correct reply is <answer>TAG</answer>.", the gold written as the
reply itself); the context names carry the suffix ``@sentence`` / ``@reply``.

At the deciding token (the first token after ``<answer>``) it reports, averaged over failed and over
successful rollouts: the probability of the token the student sampled, the total probability of the
four candidates' first tokens, and that of the gold tag's first token. The teacher "corrects" a failure
when it lowers the sampled token and raises the gold one while keeping its mass on the candidates.

Run: ``python benchmarks/finer_mini_teacher_probe.py results/learning_cpu/tuning/e2 --step 1``
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

GOLD_PHRASINGS = {"reply": "reply", "sentence": "tag"}
"""``--gold-as`` name -> FinerMini's ``gold_feedback``, whose ``gold_sentence`` ends a failure's feedback."""

CONTEXTS = ("resd_official", "resd_no_previous_trial", "resd_no_previous_trial_no_reflection",
            "resd_no_previous_trial_no_playbook", "resd_feedback_only", "sdpo")


def _contexts(layouts: list[str]) -> list[tuple[str, str]]:
    """(context, teacher layout) pairs to build: every context in the official layout, the RESD ones
    also in each other requested layout."""
    pairs = [(c, "official") for c in CONTEXTS]
    return pairs + [(c, layout) for layout in layouts if layout != "official" for c in CONTEXTS if c != "sdpo"]


def _name(context: str, layout: str) -> str:
    return context if layout == "official" else f"{context}[{layout}]"


def _records(run: Path, step: int) -> list[dict[str, Any]]:
    path = run / "records" / f"step_{step:06d}.jsonl.gz"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist; give a run directory written by resd-learn and a recorded step")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _playbook(run: Path, step: int) -> str:
    path = run / "records" / f"playbook_{step:06d}.md"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _policy_feedback(recorded: str, gold_sentences: list[str]) -> str:
    """A recorded rollout's feedback without a trailing privileged gold sentence (runs record the policy
    text, but older runs or other settings may have kept the privileged one)."""
    for sentence in gold_sentences:
        if recorded.endswith(" " + sentence):
            return recorded[: -len(sentence) - 1]
    return recorded


def _base_model(run: Path) -> Path:
    """The warm-started base model of the run (same cache key as the run), else the run's model path."""
    from resd_learner.config import load_config
    from resd_learner.warm_start import run_base_model

    return run_base_model(load_config(run / "config.yaml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--model", default=None, help="model directory (default: the run's warm-started base)")
    parser.add_argument("--gold-as", choices=sorted(GOLD_PHRASINGS), nargs="+", default=sorted(GOLD_PHRASINGS),
                        help="how the privileged feedback names the gold tag of a failure (default: both)")
    parser.add_argument("--layouts", nargs="+", default=["official"],
                        help="teacher layouts to build the RESD contexts in (default: official)")
    args = parser.parse_args(argv)
    from resd_learner.context import TEACHER_LAYOUTS

    unknown = sorted(set(args.layouts) - set(TEACHER_LAYOUTS))
    if unknown:
        parser.error(f"unknown layouts {unknown}; use some of {list(TEACHER_LAYOUTS)}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import resd_envs
    from resd_envs.finer_mini.family import FinerMiniFamily
    from resd_learner.context.teacher_prompt import build_sdpo_teacher_inputs, build_teacher_inputs

    run = Path(args.run_dir)
    if not (run / "config.yaml").is_file():
        raise SystemExit(f"{run} has no config.yaml; give a run directory written by resd-learn")
    import yaml

    env_id = (yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")).get("env") or {}).get("id")
    if env_id != "resd/FinerMini-v0":
        raise SystemExit(f"{run} trained on {env_id!r}; this probe reads FinerMini runs (resd/FinerMini-v0) only")
    rows = _records(run, args.step)
    model_dir = Path(args.model) if args.model else _base_model(run)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tasks = {t["task_id"]: t for split in ("train", "test") for t in resd_envs.load_tasks("resd/FinerMini-v0", split)}
    reflections = {r["example_id"]: r["text"] for r in rows if r.get("kind") == "reflection"
                   and not r.get("template_echo")}
    playbook = _playbook(run, args.step)
    families = {name: FinerMiniFamily(gold_feedback=value) for name, value in GOLD_PHRASINGS.items()}
    answer_prefix = len(tokenizer.encode("<answer>", add_special_tokens=False))

    def first_token(tag: str) -> int:
        return tokenizer.encode("<answer>" + tag, add_special_tokens=False)[answer_prefix]

    def deciding_probs(prefix: list[int], response: list[int]) -> Any:
        ids = torch.tensor([prefix + response[: answer_prefix + 1]])
        with torch.inference_mode():
            logits = model(ids).logits[0, len(prefix) + answer_prefix - 1].float()
        return torch.softmax(logits, -1)

    totals: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for row in rows:
        if row.get("type") != "rollout" or not row["response"].startswith("<answer>"):
            continue
        task = tasks[row["example_id"]]
        messages = [dict(m) for m in task["messages"]]
        response = tokenizer.encode(row["response"], add_special_tokens=False)
        if len(response) <= answer_prefix:
            continue
        passed = bool(row["passed"])
        gold_sentences = {name: family.gold_sentence(task) for name, family in families.items()}
        policy = _policy_feedback(row["feedback"], list(gold_sentences.values()))
        solution = row["response"] if passed else ""
        student = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        prefixes = {"student": list(student["input_ids"] if hasattr(student, "keys") else student)}
        for phrasing in ([""] if passed else args.gold_as):
            feedback = policy if passed else f"{policy} {gold_sentences[phrasing]}"
            suffix = f"@{phrasing}" if phrasing else ""
            for context, layout in _contexts(args.layouts):
                if context == "sdpo":
                    built = build_sdpo_teacher_inputs(tokenizer, prompt_messages=messages, response_ids=response,
                                                      feedback=feedback, solution=solution, max_length=1024)
                else:
                    built = build_teacher_inputs(
                        tokenizer, prompt_messages=messages, response_ids=response, feedback=feedback,
                        solution=solution,
                        reflection="" if "no_reflection" in context or context == "resd_feedback_only"
                        else reflections.get(row["example_id"], ""),
                        playbook="" if "no_playbook" in context or context == "resd_feedback_only" else playbook,
                        template="generic", max_length=1024, previous_trial=row["response"],
                        use_previous_trial=context == "resd_official", layout=layout)
                prefixes[_name(context, layout) + suffix] = list(built.input_ids[: built.response_start])
        candidates = sorted({first_token(c) for c in task["candidates"]})
        sampled, gold = response[answer_prefix], first_token(task["gold"])
        for name, prefix in prefixes.items():
            probs = deciding_probs(prefix, response)
            totals.setdefault(("success" if passed else "failure", name), []).append(
                (float(probs[sampled]), float(probs[candidates].sum()), float(probs[gold])))
    print(f"run {run}, step {args.step}, model {model_dir}")
    print(f"{'rollouts':9s} {'context':48s} {'n':>3s} {'p(sampled)':>11s} {'p(candidates)':>14s} {'p(gold)':>8s}")
    names = [_name(c, layout) for c, layout in _contexts(args.layouts)]
    order = ["student", *names]
    order += [f"{c}@{p}" for p in args.gold_as for c in names]
    for (kind, name), values in sorted(totals.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        n = len(values)
        means = [sum(v[i] for v in values) / n for i in range(3)]
        print(f"{kind:9s} {name:48s} {n:3d} {means[0]:11.3f} {means[1]:14.3f} {means[2]:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

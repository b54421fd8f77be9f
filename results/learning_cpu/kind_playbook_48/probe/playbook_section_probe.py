"""Scratch probe (kept with its output; not part of the package or the benchmarks): does the playbook's format clause draw the teacher off the candidates?

For the failures of one step of a run, the base model scores under teacher prompts (no previous trial,
no reflection, feedback with the gold as reply) that differ only by the PLAYBOOK section:
none / the run's playbook / the run's playbook minus the format clause / the format clause alone /
the positive instruction clause alone. Reports mean p(candidates' first tokens) and p(gold first
token) at the deciding token, the probability of the four whole replies <answer>CANDIDATE</answer>
summed (the teacher's mass on well-formed replies) and that of the gold reply, each averaged over failures.

Run from the repository root (about 15 min on 2 CPU cores):
    python results/learning_cpu/kind_playbook_48/probe/playbook_section_probe.py results/learning_cpu/kind_playbook_48/runs/resd_s1 4
"""
import math, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "benchmarks"))  # finer_mini_teacher_probe
import finer_mini_teacher_probe as P
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
import resd_envs
from resd_envs.finer_mini.family import FinerMiniFamily
from resd_learner.context.teacher_prompt import build_teacher_inputs

if len(sys.argv) != 3 or not sys.argv[2].replace(",", "").isdigit():
    raise SystemExit("usage: playbook_section_probe.py RUN_DIR STEP[,STEP...]  (a FinerMini run written by resd-learn)")
run = Path(sys.argv[1]); steps = [int(s) for s in sys.argv[2].split(",")]
model_dir = P._base_model(run)
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
tasks = {t["task_id"]: t for split in ("train",) for t in resd_envs.load_tasks("resd/FinerMini-v0", split)}
fam = FinerMiniFamily(gold_feedback="reply", wrong_feedback="kind")
FORMAT = "none of the candidates was named"
POS = "name exactly one of the candidate tags, copied exactly, inside <answer></answer>"
def without(pb, text): return "\n".join(l for l in pb.splitlines() if not l.endswith(":: " + text))
def only(text): return f"## COMMON MISTAKES TO AVOID\n[err-00001] helpful=0 harmful=0 :: {text}"
pre = len(tok.encode("<answer>", add_special_tokens=False))
totals = {}
for step in steps:
    rows = P._records(run, step); pb = P._playbook(run, step)
    variants = {"no playbook": "", "run playbook": pb, "minus format clause": without(pb, FORMAT),
                "format clause only": only(FORMAT), "instruction clause only": only(POS)}
    for row in rows:
        if row.get("type") != "rollout" or row["passed"]: continue
        task = tasks[row["example_id"]]; msgs = [dict(m) for m in task["messages"]]
        gold_sentence = fam.gold_sentence(task)
        fb = f"{P._policy_feedback(row['feedback'], [gold_sentence])} {gold_sentence}"
        resp = tok.encode(row["response"], add_special_tokens=False)
        cand_first = sorted({tok.encode("<answer>" + c, add_special_tokens=False)[pre] for c in task["candidates"]})
        gold_first = tok.encode("<answer>" + task["gold"], add_special_tokens=False)[pre]
        for name, playbook in variants.items():
            b = build_teacher_inputs(tok, prompt_messages=msgs, response_ids=resp, feedback=fb, solution="",
                                     reflection="", playbook=playbook, template="generic", max_length=1024,
                                     previous_trial=row["response"], use_previous_trial=False)
            prefix = list(b.input_ids[: b.response_start])
            # mass on the four full candidate replies
            lp_total = []
            for c in task["candidates"]:
                r = tok.encode(f"<answer>{c}</answer>", add_special_tokens=False)
                ids = torch.tensor([prefix + r])
                with torch.inference_mode():
                    lg = torch.log_softmax(model(ids).logits[0].float(), -1)
                lp = sum(float(lg[len(prefix) + i - 1, r[i]]) for i in range(len(r)))
                lp_total.append(lp)
                if c == task["gold"]: lp_gold = lp
            ids = torch.tensor([prefix + resp[: pre + 1]])
            with torch.inference_mode():
                probs = torch.softmax(model(ids).logits[0, len(prefix) + pre - 1].float(), -1)
            totals.setdefault(name, []).append((float(probs[cand_first].sum()), float(probs[gold_first]),
                                                sum(math.exp(x) for x in lp_total), math.exp(lp_gold), len(prefix)))
print(run, steps)
print(f"{'playbook section':26s} {'n':>3s} {'p(cand 1st)':>11s} {'p(gold 1st)':>11s} {'P(4 replies)':>12s} {'P(gold reply)':>13s} {'prompt toks':>11s}")
for name, v in totals.items():
    n = len(v); m = [sum(x[i] for x in v) / n for i in range(5)]
    print(f"{name:26s} {n:3d} {m[0]:11.3f} {m[1]:11.3f} {m[2]:12.3f} {m[3]:13.3f} {m[4]:11.0f}")

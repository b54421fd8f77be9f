"""Builds the golden samples shipped in ``resd_envs/fidelity/samples/`` from the vendored test data.

Run from the repository root: ``python tests/resd_envs/fidelity/sample_builder.py --write`` (or
``--check`` to confirm the shipped files are what this script produces; the test suite does that).

Inputs (all under ``tests/data``, see its README): DELTA's Manufactoria golden cases, DELTA's
BouncingSim golden scenes, and ACE's FiNER val file (only its ``target`` strings are used). Nothing here
runs resd's own scorers: every reference answer is either recorded output of the reference
implementation or derived from it by the reference's documented rules, spelled out below.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data"
OUT = ROOT / "resd_envs" / "fidelity" / "samples"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _dump(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


# -- Manufactoria ------------------------------------------------------------------------------------
def _api_reward(verdicts: list[str], expected: list[bool], mode: str) -> float:
    """DELTA's score from the reference's recorded verdicts: 0 on a parse error, else pass rate / all-pass."""
    if "error" in verdicts or not verdicts:
        return 0.0
    passes = [(v == "accept") == e for v, e in zip(verdicts, expected)]
    return sum(passes) / len(passes) if mode == "pass_rate" else float(all(passes))


def manufactoria_rows() -> list[dict[str, Any]]:
    """The 300 golden (program, tape) rows unchanged, then response rows built from them."""
    golden = _jsonl(DATA / "fidelity" / "manufactoria_sample.jsonl")
    rows = [dict(r, id=f"golden-{i:03d}") for i, r in enumerate(golden)]
    by_program: dict[str, list[dict[str, Any]]] = {}
    for r in golden:
        by_program.setdefault(r["program"], []).append(r)
    # Programs holding ``` are left out: wrapped in a fence they would no longer be the same program.
    usable = [cases for program, cases in by_program.items() if "```" not in program]
    multi = [cases for cases in usable if len(cases) >= 2]
    errors = [cases for cases in usable if cases[0]["result"] == "error"][:6]
    responses = []
    for k, cases in enumerate(multi + errors):
        program = cases[0]["program"]
        # Labels alternate so that some rows pass and some fail; the verdicts are the reference's own.
        expected = [(i + k) % 3 != 0 for i in range(len(cases))]
        mode = "pass_rate" if k % 2 == 0 else "all_pass"
        verdicts = [c["result"] for c in cases]
        if k % 5 == 4:  # a bare program with no fence: the whole response is the program (spec section 3)
            response = program
        else:
            response = f"The factory reads the tape front to back.\n\n```manufactoria\n{program}\n```\n"
        row: dict[str, Any] = {
            "id": f"response-{k:02d}",
            "response": response,
            "test_cases": [{"input": c["tape"], "expected_output": "", "expected_accepted": e,
                            "check_output": False, "description": ""} for c, e in zip(cases, expected)],
            "reward_mode": mode,
            "reward": _api_reward(verdicts, expected, mode),
        }
        if k % 3 == 0 and "error" not in verdicts:  # the API's per-test replies, as a server log keeps them
            row["results"] = [{"input": c["tape"], "expected_output": "", "actual_output": c["output_tape"],
                               "expected_accepted": e, "actual_accepted": c["result"] == "accept",
                               "check_output": False, "passed": (c["result"] == "accept") == e,
                               "rejection_reason": c["rejection"], "description": ""}
                              for c, e in zip(cases, expected)]
        responses.append(row)
    # Extraction rules (spec section 3): a ```python fence keeps "python" as the program's first line,
    # which the reference rejects (invalid node declaration) -> reward 0, whatever the program.
    good = multi[0][0]["program"]
    responses.append({"id": "response-python-fence", "response": f"```python\n{good}\n```",
                      "test_cases": [{"input": "", "expected_accepted": True, "check_output": False}],
                      "reward_mode": "pass_rate", "reward": 0.0})
    # The last fenced block is graded: a good program followed by a malformed one scores 0.
    bad = errors[0][0]["program"]
    responses.append({"id": "response-last-block-wins",
                      "response": f"```manufactoria\n{good}\n```\nOr alternatively:\n```manufactoria\n{bad}\n```",
                      "test_cases": [{"input": c["tape"], "expected_accepted": c["result"] == "accept",
                                      "check_output": False} for c in multi[0]],
                      "reward_mode": "all_pass", "reward": 0.0})
    # ... and the same program last scores what the reference's verdicts give (10.0 = verification_reward).
    responses.append({"id": "response-scaled-reward",
                      "response": f"```manufactoria\n{bad}\n```\nFixed version:\n```manufactoria\n{good}\n```",
                      "test_cases": [{"input": c["tape"], "expected_accepted": c["result"] == "accept",
                                      "check_output": False} for c in multi[0]],
                      "reward_mode": "all_pass", "verification_reward": 10.0, "reward": 10.0})
    return rows + responses


# -- BouncingSim -------------------------------------------------------------------------------------
def _assert(t: float, positions: list[list[float]], tol: float) -> str:
    return f"assert check_distance(predict_position({t:.2f}), {json.dumps(positions)}) <= {tol}"


def bouncingsim_rows() -> list[dict[str, Any]]:
    """The 20 golden scenes unchanged, plus two of them in DELTA's dataset layout."""
    golden = _jsonl(DATA / "fidelity" / "bouncingsim_sample.jsonl")
    rows = list(golden)
    for r in golden:
        if r["ref_id"] in ("G_1_1", "G_2_1"):
            rows.append({
                "id": f"delta-layout/{r['ref_id']}",
                "difficulty": r["difficulty_name"],
                "timestamps": r["timestamps"],
                "tolerance": r["tolerance"],
                "scene_config": json.dumps(r["scene"]),
                "ground_truth": [_assert(t, p, r["tolerance"]) for t, p in zip(r["timestamps"], r["expected_positions"])],
            })
    return rows


# -- Finer -------------------------------------------------------------------------------------------
def _ace_correct(answer: str, target: str) -> bool:
    """ACE's sample-level rule: split both on commas, lower-case and strip, cut/pad the answer, all equal."""
    gold = [g.strip().lower() for g in target.split(",")]
    pred = [p.strip().lower() for p in answer.split(",")][: len(gold)]
    pred += [""] * (len(gold) - len(pred))
    return pred == gold


def finer_rows() -> list[dict[str, Any]]:
    """ACE log rows: a response per answer form, ACE's extracted answer (by its documented rules,
    written out by hand per form below) and ACE's verdict on it."""
    targets = [r["target"] for r in _jsonl(DATA / "finer" / "finer_val_batched_500_samples.jsonl")[:15]]
    rows = []

    def add(index: int, response: str, ace_answer: str) -> None:
        target = targets[index]
        rows.append({"index": index, "response": response, "target": target, "final_answer": ace_answer,
                     "is_correct": _ace_correct(ace_answer, target)})

    def tags(i: int) -> list[str]:
        return targets[i].split(",")

    def js(answer: str, reasoning: str = "Matched each number to its XBRL element.") -> str:
        return json.dumps({"reasoning": reasoning, "bullet_ids": [], "final_answer": answer})

    # 0-5: ACE's generator JSON (rule 1: the whole reply is JSON -> its final_answer)
    add(0, js(targets[0]), targets[0])
    wrong = tags(1)[:3] + ["Revenues"]
    add(1, js(",".join(wrong)), ",".join(wrong))
    spaced = ", ".join(t.lower() for t in tags(2))
    add(2, js(spaced), spaced)  # case and spaces are ignored
    extra = targets[3] + ",Goodwill"
    add(3, js(extra), extra)  # pieces beyond the four gold tags are dropped
    short = ",".join(tags(4)[:3])
    add(4, js(short), short)  # a missing piece is wrong
    dotted = targets[5] + "."
    add(5, js(dotted), dotted)  # trailing punctuation breaks the last match
    numbered = ", ".join(f"{i + 1}. {t}" for i, t in enumerate(tags(6)))
    add(6, js(numbered), numbered)  # numbering breaks every match
    # 7: a Python-style dict (not JSON): rule 3, the single-quoted final_answer pair
    add(7, "Here is my answer: {'reasoning': 'see above', 'final_answer': '" + targets[7] + "'}", targets[7])
    # 8: rule 4, "The final answer is \boxed{...}"
    add(8, "Each entity is a percentage or an amount.\nThe final answer is \\boxed{" + targets[8] + "}", targets[8])
    # 9: rule 4, "The final answer is: ..." up to the end of the line
    add(9, "Reasoning: the first is an ownership share.\nThe final answer is: " + ", ".join(tags(9)), ", ".join(tags(9)))
    # 10: rule 2, Finish[...]
    add(10, "Thought: all four are durations or amounts.\nFinish[" + targets[10] + "]", targets[10])
    # 11: a bare line of tags: ACE finds nothing ("No final answer found"); resd reads the last line
    add(11, "The four entities are award figures.\n" + targets[11], "No final answer found")
    # 12: RESD's <answer> format after a thinking block: ACE finds nothing; resd reads the answer tag
    add(12, "<think>Amortization appears three times.</think>\n<answer>" + targets[12] + "</answer>",
        "No final answer found")
    # 13: an empty reply
    add(13, "", "No final answer found")
    # 14: ACE's own sentinel for an empty API reply (four copies of a marker string)
    sentinel = ", ".join(["INCORRECT_DUE_TO_EMPTY_RESPONSE"] * 4)
    add(14, sentinel, "No final answer found")
    return rows


SAMPLES = {"manufactoria.jsonl": manufactoria_rows, "bouncingsim.jsonl": bouncingsim_rows, "finer.jsonl": finer_rows}


def build() -> dict[str, str]:
    """File name -> the exact text of each shipped sample."""
    return {name: _dump(make()) for name, make in SAMPLES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = OUT / name
        if args.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({text.count(chr(10))} rows)")
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print(f"out of date: {', '.join(stale)} (run with --write)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

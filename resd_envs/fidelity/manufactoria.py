"""Manufactoria-Has fidelity: program/tape rows and model-response rows against DELTA's verifier.

Two row layouts (one file may mix them; see ``docs/fidelity.md``):

* **program/tape** (the layout of DELTA golden files): ``program``, ``tape``, and the reference's
  ``result`` (``accept``/``reject``/``error``) plus any of ``output_tape``, ``steps``, ``rejection``,
  ``error``, ``error_message``. Every reference field present is compared with this installation's
  parser and machine.
* **response** (what a DELTA reward log records): ``response`` (the full model output),
  ``test_cases`` (DELTA ``TestCase`` objects: ``input``, ``expected_accepted``, ``check_output``,
  ``expected_output``) and the reference's ``reward`` (0-1; scaled by ``verification_reward`` when the
  log recorded the trainer's scaled value), with ``reward_mode`` ``pass_rate`` or anything else
  (= all-pass, as DELTA's verifier falls back). An optional ``results`` list (the API's per-test
  replies) is compared test by test.

Live mode sends the same inputs to a running DELTA ``/test_solution`` server instead of reading the
reference answers from the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from resd_envs.fidelity.http import ReferenceServerError, post_json
from resd_envs.fidelity.report import Check, FidelityReport
from resd_envs.fidelity.rows import RowFormatError, need, short
from resd_envs.manufactoria import ManufactoriaSyntaxError, extract_program, parse, run
from resd_envs.manufactoria.extract import fence_count

RESULTS = ("accept", "reject", "error")
REJECTIONS = ("routed_to_none", "max_iterations", "unknown_node")
#: The fields of a program/tape row that are compared when present.
FIELDS = ("result", "output_tape", "steps", "rejection", "error", "error_message")
_REGEX_CHARS = ".+*?|()"


@dataclass(frozen=True)
class TapeRow:
    line: int
    program: str
    tape: str
    reference: dict[str, Any]
    label: str


@dataclass(frozen=True)
class ResponseRow:
    line: int
    response: str
    test_cases: tuple[dict[str, Any], ...]
    reward: float | None
    mode: str
    scale: float
    results: tuple[dict[str, Any], ...] | None
    label: str


def read_row(line: int, row: dict[str, Any], *, live: bool) -> TapeRow | ResponseRow:
    """Validate one input row.

    Raises:
        RowFormatError: not one of the two layouts, or a field of the wrong type/value.
    """
    label = str(row.get("id", row.get("uid", row.get("category", f"row {line}"))))
    if "program" in row or "tape" in row:
        program = need(row, "program", str, "the program text given to the parser")
        tape = need(row, "tape", str, 'the input tape, e.g. "RBYG" or ""')
        reference = {k: row[k] for k in FIELDS if k in row}
        if not live:
            need(row, "result", str, "the reference verdict: accept, reject or error")
        if "result" in reference and reference["result"] not in RESULTS:
            raise RowFormatError(f'"result" is {short(reference["result"])}; use accept, reject or error')
        if reference.get("rejection") not in (None, *REJECTIONS):
            raise RowFormatError(f'"rejection" is {short(reference["rejection"])}; '
                                 f'use one of {", ".join(REJECTIONS)} or null')
        if "steps" in reference and reference["steps"] is not None and (
            isinstance(reference["steps"], bool) or not isinstance(reference["steps"], int)
        ):
            raise RowFormatError(f'"steps" is {short(reference["steps"])}; '
                                 "it should be an integer path length or null")
        return TapeRow(line, program, tape, reference, label)
    if "response" in row:
        response = need(row, "response", str, "the full model response")
        cases = need(row, "test_cases", list, "a list of DELTA test cases {input, expected_accepted, ...}")
        checked = tuple(_test_case(i, case) for i, case in enumerate(cases))
        reward = None
        if not live:
            value = need(row, "reward", (int, float), "the reference reward, a number")
            reward = float(value)
        mode = row.get("reward_mode", "all_pass")
        if not isinstance(mode, str):
            raise RowFormatError(f'"reward_mode" is {short(mode)}; use "pass_rate" or "all_pass"')
        scale = row.get("verification_reward", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise RowFormatError(f'"verification_reward" is {short(scale)}; it should be a positive number')
        results = row.get("results")
        if results is not None and (
            not isinstance(results, list) or not all(isinstance(r, dict) for r in results)
        ):
            raise RowFormatError('"results" should be the API\'s list of per-test objects (or be left out)')
        return ResponseRow(line, response, checked, reward, mode, float(scale),
                           tuple(results) if results is not None else None, label)
    raise RowFormatError(
        'neither a program/tape row (needs "program", "tape", "result") nor a response row '
        '(needs "response", "test_cases", "reward"); see docs/fidelity.md'
    )


def _test_case(index: int, case: Any) -> dict[str, Any]:
    if not isinstance(case, dict):
        raise RowFormatError(f"test_cases[{index}] is {type(case).__name__}; it should be an object")
    tape = case.get("input")
    if not isinstance(tape, str):
        raise RowFormatError(f'test_cases[{index}] needs "input" (the tape, a string); got {short(tape)}')
    out = {
        "input": tape,
        "expected_output": case.get("expected_output", ""),
        "expected_accepted": case.get("expected_accepted", True),
        # DELTA's TestCase model defaults check_output to True.
        "check_output": case.get("check_output", True),
    }
    if not isinstance(out["expected_accepted"], bool) or not isinstance(out["check_output"], bool):
        raise RowFormatError(f'test_cases[{index}]: "expected_accepted" and "check_output" must be true/false')
    if not isinstance(out["expected_output"], str):
        raise RowFormatError(f'test_cases[{index}]: "expected_output" must be a string')
    return out


# -- this installation's answers ----------------------------------------------------------------
def ours_for_tape(program: str, tape: str) -> dict[str, Any]:
    """This installation's outcome in the golden-file fields."""
    try:
        factory = parse(program)
    except ManufactoriaSyntaxError as error:
        return {"result": "error", "output_tape": None, "steps": None, "rejection": None,
                "error": error.category, "error_message": str(error)}
    out = run(factory, tape)
    return {"result": out.result, "output_tape": out.output_tape, "steps": out.steps, "rejection": out.rejection,
            "error": None, "error_message": None}


def api_test_passed(accepted: bool, final_tape: str, case: dict[str, Any]) -> bool:
    """DELTA ``/test_solution``'s pass rule for one test case.

    With ``check_output`` the final tape must match ``expected_output`` (a full-match regex when it
    contains any of ``. + * ? | ( )`` and compiles, else plain equality), and the test passes iff
    ``(output matches and accepted) == expected_accepted``; without it, iff
    ``accepted == expected_accepted``.
    """
    if not case["check_output"]:
        return accepted == case["expected_accepted"]
    expected = case["expected_output"]
    matches = final_tape == expected
    if any(ch in expected for ch in _REGEX_CHARS):
        try:
            matches = re.fullmatch(expected, final_tape) is not None
        except re.error:
            pass
    return (matches and accepted) == case["expected_accepted"]


def score_from_passes(passes: list[bool], valid: bool, mode: str) -> float:
    """The verifier's 0-1 score: 0 on a parse error or no tests; pass rate for ``pass_rate``, else all-pass."""
    if not valid or not passes:
        return 0.0
    if mode == "pass_rate":
        return sum(passes) / len(passes)
    return 1.0 if all(passes) else 0.0


def ours_for_response(row: ResponseRow) -> dict[str, Any]:
    """This installation's reward for a response row (extraction, parse, run, DELTA pass rule)."""
    program = extract_program(row.response)
    try:
        factory = parse(program)
    except ManufactoriaSyntaxError as error:
        return {"reward": 0.0, "valid": False, "passed": [], "accepted": [], "parse_error": str(error)}
    outcomes = [run(factory, case["input"]) for case in row.test_cases]
    passes = [api_test_passed(o.accepted, o.output_tape, c) for o, c in zip(outcomes, row.test_cases)]
    return {"reward": score_from_passes(passes, True, row.mode) * row.scale, "valid": True, "passed": passes,
            "accepted": [o.accepted for o in outcomes], "parse_error": None}


# -- reasons -------------------------------------------------------------------------------------
def _quirk_note(ours: dict[str, Any]) -> str | None:
    if ours.get("rejection") == "unknown_node":
        return "reference quirk reproduced: a route to uppercase END rejects ('Unknown node: END')"
    if ours.get("rejection") == "max_iterations":
        return "reference quirk reproduced: the 1000-iteration cap counts START and the final visit"
    return None


def _tape_reason(ours: dict[str, Any], ref: dict[str, Any]) -> str | None:
    if (ours["error"] == "invalid_condition_for_puller" and ref.get("error") in (None, ours["error"])
            and isinstance(ref.get("error_message"), str) and "Invalid condition" in ref["error_message"]
            and ref["error_message"].split(":")[0] == str(ours["error_message"]).split(":")[0]):
        return ("known difference: with two wrong colours in one puller the reference names the one its set "
                "iteration meets first (depends on PYTHONHASHSEED); resd names the first in route order")
    return None


def _response_note(response: str) -> str | None:
    blocks = fence_count(response)
    if blocks == 0:
        return "no complete fence: the whole response was parsed (reference behaviour)"
    first = extract_program(response).split("\n", 1)[0].strip()
    if first and not first.split()[0].isupper():
        return f"fence tag kept as the first program line ({first[:30]!r}), a parse error in the reference too"
    if blocks > 1:
        return f"{blocks} fenced blocks: the last one is graded (reference behaviour)"
    return None


# -- checks ----------------------------------------------------------------------------------------
def tape_check(row: TapeRow, reference: dict[str, Any]) -> Check:
    ours = ours_for_tape(row.program, row.tape)
    compared = {k: v for k, v in reference.items() if k in FIELDS}
    mine = {k: ours[k] for k in compared}
    agree = mine == compared
    return Check(
        line=row.line, key=f"{row.label} tape={row.tape!r}"[:80], group="program/tape", agree=agree, ours=mine,
        reference=compared, input={"program": row.program, "tape": row.tape},
        reason=None if agree else _tape_reason(ours, compared), note=_quirk_note(ours) if agree else None,
    )


def response_check(row: ResponseRow, reference: dict[str, Any]) -> Check:
    ours = ours_for_response(row)
    ref_reward = float(reference["reward"])
    agree = abs(ours["reward"] - ref_reward) <= 1e-9 * max(1.0, row.scale)
    mine: dict[str, Any] = {"reward": ours["reward"]}
    theirs: dict[str, Any] = {"reward": ref_reward}
    ref_results = reference.get("results")
    if ref_results is not None:
        ref_acc = [r.get("actual_accepted") for r in ref_results]
        if ours["valid"]:
            mine["actual_accepted"] = ours["accepted"]
            theirs["actual_accepted"] = ref_acc
            agree = agree and ours["accepted"] == ref_acc
    if ours["parse_error"]:
        mine["parse_error"] = ours["parse_error"]
    if "message" in reference:
        theirs["message"] = reference["message"]
    return Check(
        line=row.line, key=f"{row.label} ({len(row.test_cases)} tests, {row.mode})"[:80], group="response reward",
        agree=agree, ours=mine, reference=theirs,
        input={"response": row.response, "program": extract_program(row.response),
               "tapes": [c["input"] for c in row.test_cases]},
        note=_response_note(row.response) if agree else None,
    )


def check_rows(rows: Iterable[TapeRow | ResponseRow], report: FidelityReport) -> None:
    """Compare every row with the reference answers recorded in it."""
    for row in rows:
        if isinstance(row, TapeRow):
            report.checks.append(tape_check(row, row.reference))
        else:
            ref: dict[str, Any] = {"reward": row.reward}
            if row.results is not None:
                ref["results"] = list(row.results)
            report.checks.append(response_check(row, ref))


# -- live ----------------------------------------------------------------------------------------
_REJECTION_OF = (("Routed to NONE", "routed_to_none"), ("Maximum iterations", "max_iterations"),
                 ("Unknown node", "unknown_node"))


def _rejection(text: Any) -> str | None:
    if not text:
        return None
    for prefix, name in _REJECTION_OF:
        if str(text).startswith(prefix):
            return name
    return str(text)


def live_tape_answers(base: str, program: str, tapes: list[str]) -> list[dict[str, Any]]:
    """The reference server's outcome for each tape, in golden-file fields (no error category:
    the server reports only the message).

    Raises:
        ReferenceServerError: the server is unreachable or its reply is not DELTA's shape.
    """
    payload = {
        "dsl": program,
        "test_cases": [{"input": t, "expected_output": "", "expected_accepted": True, "check_output": False,
                        "description": ""} for t in tapes],
        "max_execution_time": 1.0,
    }
    reply = post_json(base, "/test_solution", payload)
    if not isinstance(reply, dict) or "valid" not in reply:
        raise ReferenceServerError(f"/test_solution replied {short(reply, 120)}; expected DELTA's "
                                   '{"valid", "all_passed", "results"} object')
    if not reply["valid"]:
        message = str(reply.get("message", ""))
        message = message.removeprefix("DSL Parse Error: ")
        error = {"result": "error", "output_tape": None, "steps": None, "rejection": None, "error_message": message}
        return [dict(error) for _ in tapes]
    results = reply.get("results")
    if not isinstance(results, list) or len(results) != len(tapes):
        raise ReferenceServerError(f"/test_solution returned {short(results)} for {len(tapes)} test cases")
    out = []
    for item in results:
        accepted = bool(item.get("actual_accepted"))
        out.append({"result": "accept" if accepted else "reject", "output_tape": item.get("actual_output"),
                    "steps": len(item.get("path") or []), "rejection": _rejection(item.get("rejection_reason")),
                    "error_message": None})
    return out


def check_live(rows: list[TapeRow | ResponseRow], base: str, report: FidelityReport) -> None:
    """Compare every row with a running DELTA Manufactoria server's answers on the same inputs."""
    by_program: dict[str, list[TapeRow]] = {}
    for row in rows:
        if isinstance(row, TapeRow):
            by_program.setdefault(row.program, []).append(row)
    answers: dict[int, dict[str, Any]] = {}
    for program, group in by_program.items():
        for row, answer in zip(group, live_tape_answers(base, program, [r.tape for r in group])):
            answers[row.line] = answer
    for row in rows:
        if isinstance(row, TapeRow):
            report.checks.append(tape_check(row, answers[row.line]))
            continue
        cases = [dict(c, description="") for c in row.test_cases]
        payload = {"dsl": extract_program(row.response), "test_cases": cases, "max_execution_time": 1.0}
        reply = post_json(base, "/test_solution", payload)
        if not isinstance(reply, dict) or "valid" not in reply:
            raise ReferenceServerError(f"/test_solution replied {short(reply, 120)}; expected DELTA's shape")
        results = reply.get("results") or []
        passes = [bool(r.get("passed")) for r in results]
        reward = score_from_passes(passes, bool(reply["valid"]), row.mode) * row.scale
        ref: dict[str, Any] = {"reward": reward, "results": results if reply["valid"] else None}
        if not reply["valid"]:
            ref.pop("results")
            ref["message"] = reply.get("message")
        report.checks.append(response_check(row, ref))

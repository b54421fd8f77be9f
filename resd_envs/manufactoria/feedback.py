"""Feedback text that teaches: what went wrong, where, and how to fix it.

* parse errors: the line, what the verifier objects to, the offending text, and a concrete fix
  (with the reference's quirks spelled out: 4-space indentation, ``END`` vs ``end``, fence tags);
* wrong verdicts: which tapes failed (expected vs actual) and, at ``detail="full"``, a short trace of
  each: the path taken and why the robot ended where it did (routed to NONE because the front symbol
  had no branch, the loop it was caught in at the 1000-step limit, ``END`` used as a target, ...).

Two audiences. The policy-safe levels never name a failed test tape (a failed tape plus what the
factory did gives away its expected verdict, and a lookup program could then copy it):
``minimal`` (one line), ``summary`` (+ how the failures split: should-accept tapes rejected, and why;
should-reject tapes accepted), ``full`` (+ a worked counterexample on a tape that is neither a test
nor a hidden tape, with the path, why the robot ended there and why the rule says otherwise).
:func:`failures_feedback` is the ``privileged`` text for a teacher or a human: the failed test tapes
with expected vs actual verdicts, explanations and traces. The caller caps the length with ``cap_text``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from resd_envs.manufactoria.machine import MAX_ITERATIONS, RunResult, Trace, TraceStep, trace
from resd_envs.manufactoria.parser import NODE_TYPES, Factory, ManufactoriaSyntaxError

#: Failing tests explained in full / listed in summary.
FULL_EXPLAINED = 6
SUMMARY_LISTED = 20

_REASON = {"routed_to_none": "routed to NONE", "max_iterations": "hit the 1000-step limit", "unknown_node": "sent to END"}


@dataclass(frozen=True)
class Failure:
    """One failed test: its id, input tape, the expected verdict and what the factory did."""

    test_id: str
    tape: str
    expected_accept: bool
    outcome: RunResult


def show_tape(tape: str, limit: int = 40) -> str:
    """A tape in quotes, shortened in the middle when long."""
    if len(tape) <= limit:
        return f"'{tape}'"
    return f"'{tape[:limit // 2]}...{tape[-limit // 2:]}' ({len(tape)} symbols)"


def verdict(accepted: bool) -> str:
    return "accept" if accepted else "reject"


# -- parse errors ----------------------------------------------------------------------------
def parse_error_hint(error: ManufactoriaSyntaxError) -> str:
    """How to fix a parse error (one or two sentences)."""
    text = (error.text or "").strip()
    category = error.category
    first_word = text.split()[0] if text.split() else ""
    looks_like_header = first_word in NODE_TYPES
    if category == "empty_program":
        return "There are no node lines (only blank lines or comments). Write the nodes inside the ```manufactoria block."
    if category == "invalid_node_declaration":
        if text.startswith("```") or (error.line == 1 and text.lower() in {"python", "manufactoria", "text", "plaintext"}):
            return (
                "The fence line was read as program text: open the block with exactly ```manufactoria "
                "(lowercase, no space) or a bare ```, and put nothing else on the closing ``` line."
            )
        if text.startswith("[") or text.startswith("NEXT"):
            return (
                "This route line is not indented by at least 4 spaces (or a tab), so it was read as a new "
                "node header. Indent every route line with 4 spaces."
            )
        if first_word.upper() in NODE_TYPES or first_word.upper().startswith(("PULLER", "PAINTER")):
            return (
                "Node types are uppercase and exactly one of START, END, PULLER_RB, PULLER_YG, PAINTER_RED, "
                "PAINTER_BLUE, PAINTER_YELLOW, PAINTER_GREEN, followed by a space and the id."
            )
        return (
            "A header must be `TYPE id:` where TYPE is START, END, PULLER_RB, PULLER_YG or PAINTER_<COLOUR>, "
            "the id uses letters, digits and underscores, and only a # comment may follow the colon."
        )
    if category == "end_has_colon":
        return "Write the end node as `END end` with no colon."
    if category == "missing_colon":
        return "Add a colon right after the id, e.g. `PULLER_RB read:` (only END has no colon)."
    if category == "duplicate_node_id":
        return "Every id may be used once (START already uses `start`, END uses `end`); rename one of the nodes."
    if category == "start_id_not_start":
        return "The entry node must be written `START start:`."
    if category == "end_id_not_end":
        return "The accepting node must be written `END end` (lowercase id)."
    if category in ("invalid_puller_route", "invalid_next_route"):
        if looks_like_header:
            return (
                "This is a node header indented by 4+ spaces or a tab, so it was read as a route of the node "
                "above. Start header lines at the left margin."
            )
        if category == "invalid_puller_route":
            return (
                "Puller routes look like `[R] target`: one of [R] [B] [Y] [G] [EMPTY] in uppercase, a space, "
                "one target id, then optionally a # comment."
            )
        return "START and painter routes look like `NEXT target` (one target id, optionally a # comment)."
    if category == "end_has_routes":
        return "END takes no routes: remove the indented lines under `END end` (or un-indent the header below it)."
    if category == "start_route_count":
        return "START needs exactly one route line `    NEXT first_node`, indented by 4 spaces, right below it."
    if category == "painter_route_count":
        return "A painter needs exactly one route line `    NEXT next_node`, indented by 4 spaces, right below it."
    if category == "invalid_condition_for_puller":
        return (
            "A PULLER_RB only has [R], [B] and [EMPTY] branches and a PULLER_YG only [Y], [G] and [EMPTY]; "
            "read the other colours with the other puller type (chain them through [EMPTY])."
        )
    if category == "missing_start":
        return "Add the entry node `START start:` with one `NEXT` route."
    if category == "missing_end":
        return "Add the accepting node `END end` (no colon, no routes)."
    if category == "undefined_reference":
        target = text
        if target.lower() in ("none", "end", "start") and target not in ("NONE", "end", "start"):
            fixed = {"none": "NONE", "end": "end", "start": "start"}[target.lower()]
            return f"Targets are case-sensitive: write `{fixed}`, not `{target}`."
        return f"Define a node with id `{target}`, or route to `end` (accept) or `NONE` (reject)."
    return "Fix the line as described."


def parse_error_feedback(error: ManufactoriaSyntaxError, detail: str, note: str = "") -> str:
    """Feedback for a program that does not parse (scores 0)."""
    where = f"line {error.line}" if error.line else "the program"
    head = f"Parse error at {where}: {error.message}. No tests were run; the score is 0."
    if detail == "minimal":
        return head
    lines = [head]
    if error.text and error.category not in ("undefined_reference",):
        lines.append(f"  offending line: {error.text}")
    lines.append(f"How to fix: {parse_error_hint(error)}")
    if note:
        lines.append(note)
    return "\n".join(lines)


# -- wrong verdicts --------------------------------------------------------------------------
def _path(steps: Sequence[TraceStep], final: str | None, head: int = 6, tail: int = 4) -> str:
    names = [s.node for s in steps] + ([final] if final else [])
    if len(names) > head + tail + 1:
        names = names[:head] + [f"... ({len(names) - head - tail} more)"] + names[-tail:]
    return " -> ".join(names)


def _loop(steps: Sequence[TraceStep]) -> list[str] | None:
    """The shortest node cycle the run ended in (checked over the last 200 steps), or None."""
    names = [s.node for s in steps[-200:]]
    for period in range(1, len(names) // 3 + 1):
        window = names[-3 * period:]
        if window[:period] * 3 == window:
            return window[-period:]
    return None


def explain(factory: Factory, run_trace: Trace) -> str:
    """Why the robot ended where it did, in one or two sentences."""
    outcome = run_trace.result
    steps = run_trace.steps
    if outcome.rejection == "max_iterations":
        cycle = _loop(steps)
        length = len(outcome.output_tape)
        if cycle:
            loop = " -> ".join(cycle + cycle[:1])
            return (
                f"still running after {MAX_ITERATIONS} steps, caught in the loop {loop} (tape length {length} at "
                "the limit). Make sure every loop reads a symbol and has an exit to end or NONE."
            )
        return f"still running after {MAX_ITERATIONS} steps without reaching end (tape length {length})."
    last = steps[-1]
    if outcome.rejection == "unknown_node":
        return (
            f"node {last.node} routes to `END` (uppercase), which is not the end node, so the robot is "
            "rejected. Use the lowercase target `end` to accept."
        )
    node = factory.nodes[last.node]
    end = "end" if outcome.accepted else "NONE"
    after = f", so the robot was accepted with tape '{outcome.output_tape}' left." if outcome.accepted else "."
    if not node.kind.startswith("PULLER"):
        return f"node {node.id}'s NEXT route (line {node.routes[0].line}) goes to {end}{after}"
    if last.action.startswith("pulled"):
        colour = last.front or ""
        route = next((r for r in node.routes if r.condition == colour), None)
        if route is None:
            return f"node {node.id} pulled {colour} and has no [{colour}] branch, so it went to NONE."
        return f"node {node.id} pulled {colour} and its [{colour}] branch (line {route.line}) goes to {end}{after}"
    if last.front is None:
        why = f"at node {node.id} the tape was empty"
    else:
        pair = "R/B" if node.kind == "PULLER_RB" else "Y/G"
        why = f"at node {node.id} the front symbol {last.front} is not one a {node.kind} reads ({pair}), so it stayed on the tape"
    empty = next((r for r in node.routes if r.condition == "EMPTY"), None)
    if empty is None:
        return f"{why}; with no [EMPTY] branch the robot went to NONE."
    return f"{why}, and its [EMPTY] branch (line {empty.line}) goes to {end}{after}"


@dataclass(frozen=True)
class Counterexample:
    """A tape outside the scored sets on which the factory disagrees with the rule."""

    tape: str
    expected_accept: bool
    reason: str


def _breakdown(failures: Sequence[Failure]) -> list[str]:
    """How the failures split by direction and cause, as counts only (no tape is named)."""
    missed = [f for f in failures if f.expected_accept]
    wrongly = len(failures) - len(missed)
    lines = []
    if missed:
        causes: dict[str, int] = {}
        for failure in missed:
            cause = _REASON.get(failure.outcome.rejection or "", "rejected")
            causes[cause] = causes.get(cause, 0) + 1
        why = ", ".join(f"{n} {cause}" for cause, n in sorted(causes.items()))
        lines.append(f"- {len(missed)} tape(s) the rule accepts were rejected ({why}).")
    if wrongly:
        lines.append(f"- {wrongly} tape(s) the rule rejects reached end and were accepted.")
    return lines


def _counts(failures: Sequence[Failure], num_tests: int) -> str:
    return f"{num_tests - len(failures)}/{num_tests} tests passed; {len(failures)} failed."


def _short_text(failures: Sequence[Failure], num_tests: int, detail: str, note: str) -> str | None:
    """The whole feedback when nothing failed (+ ``note`` above ``minimal``) or at ``minimal`` (the
    counts); None when the failures are to be described after :func:`_opening`."""
    if not failures:
        text = f"All {num_tests} tests passed."
        return text if detail == "minimal" or not note else f"{text}\n{note}"
    return _counts(failures, num_tests) if detail == "minimal" else None


def _opening(failures: Sequence[Failure], num_tests: int, note: str) -> list[str]:
    """The first lines of a failure report: the counts, then ``note`` when given."""
    return [_counts(failures, num_tests), note] if note else [_counts(failures, num_tests)]


def policy_feedback(
    factory: Factory,
    failures: Sequence[Failure],
    num_tests: int,
    detail: str,
    note: str = "",
    example: Counterexample | None = None,
) -> str:
    """Policy-safe feedback for a program that parsed: counts, the failure breakdown, a counterexample.

    Never names a test tape or its expected verdict; ``example`` must come from outside the scored sets.
    """
    short = _short_text(failures, num_tests, detail, note)
    if short is not None:
        return short
    lines = _opening(failures, num_tests, note)
    lines += _breakdown(failures)
    if detail == "summary":
        return "\n".join(lines)
    if example is None:
        lines.append(
            "The factory agrees with the rule on every other short tape tried, so the failures are on longer "
            "or unusual tapes: check loops, the [EMPTY] branches and tapes with repeated symbols."
        )
        return "\n".join(lines)
    run_trace = trace(factory, example.tape)
    got = run_trace.result
    lines.append(
        f"Counterexample (not one of the tests): tape {show_tape(example.tape)} should be "
        f"{'accepted' if example.expected_accept else 'rejected'} ({example.reason}), but your factory "
        f"{'accepts' if got.accepted else 'rejects'} it after {got.steps} steps."
    )
    lines.append(f"    path: {_path(run_trace.steps, run_trace.final_id)}")
    lines.append(f"    why: {explain(factory, run_trace)}")
    return "\n".join(lines)


def failures_feedback(
    factory: Factory,
    failures: Sequence[Failure],
    num_tests: int,
    detail: str,
    note: str = "",
    label_reason: Callable[[str], str] | None = None,
) -> str:
    """Privileged feedback for a program that parsed: counts, then the failed test tapes with their
    expected verdicts (``summary``: one line each; ``full``: explanations and traces).

    Reveals expected verdicts: for a teacher or a human only (see :func:`policy_feedback`).
    ``label_reason(tape)`` says why the task's rule accepts or rejects a tape (shown at ``full``).
    """
    short = _short_text(failures, num_tests, detail, note)
    if short is not None:
        return short
    lines = _opening(failures, num_tests, note)
    if detail == "summary":
        for failure in failures[:SUMMARY_LISTED]:
            got = failure.outcome
            reason = f" ({_REASON[got.rejection]})" if got.rejection else ""
            lines.append(
                f"- tape {show_tape(failure.tape)}: expected {verdict(failure.expected_accept)}, "
                f"got {got.result}{reason}"
            )
        if len(failures) > SUMMARY_LISTED:
            lines.append(f"- ... and {len(failures) - SUMMARY_LISTED} more")
        return "\n".join(lines)
    seen: dict[str, str] = {}
    for failure in failures[:FULL_EXPLAINED]:
        run_trace = trace(factory, failure.tape)
        got = run_trace.result
        because = f" ({label_reason(failure.tape)})" if label_reason else ""
        lines.append(
            f"- tape {show_tape(failure.tape)}: expected {verdict(failure.expected_accept)}{because}, "
            f"got {got.result} after {got.steps} steps."
        )
        lines.append(f"    path: {_path(run_trace.steps, run_trace.final_id)}")
        why = explain(factory, run_trace)
        if why in seen:
            lines.append(f"    why: same as for tape {seen[why]}.")
        else:
            seen[why] = show_tape(failure.tape, 16)
            lines.append(f"    why: {why}")
    rest = failures[FULL_EXPLAINED:]
    if rest:
        shown = ", ".join(f"{show_tape(f.tape, 16)}->{verdict(f.expected_accept)}" for f in rest[:SUMMARY_LISTED])
        more = f" and {len(rest) - SUMMARY_LISTED} more" if len(rest) > SUMMARY_LISTED else ""
        lines.append(f"Also failed (tape->expected): {shown}{more}.")
    return "\n".join(lines)

"""``resd-envs``: list, inspect, verify, evaluate and check the resd environments.

Subcommands:
  list                      ids, splits, sizes and task-set checksums
  show ENV [--task-id ID]   a task's prompt and metadata (or ``--list`` for every task id)
  verify ENV --task-id ID   score one response (from --file, --response or stdin); prints JSON
  eval ENV --responses F    score a JSONL of {"task_id", "response"} rows; writes results + summary
  eval ENV --reference      score the built-in reference solutions of a split
  render ENV --task-id ID   write a PNG (and a GIF with --gif) of a task, with a response overlaid
  check                     gymnasium's check_env on every id, plus each family's self-description
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resd_envs.api import family, list_envs, make, verify
from resd_envs.core.results import FEEDBACK_DETAILS
from resd_envs.errors import ConfigError, DataNotFoundError, MissingDependencyError, ResdEnvError
from resd_envs.progress import ProgressBar


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ResdEnvError as exc:  # every user error: one line (the first line of the message), no traceback
        print(f"resd-envs: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. --out in a folder that does not exist
        print(f"resd-envs: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


# -- subcommands ------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    for env_id in list_envs():
        line = env_id
        if args.details:
            try:
                fam = family(env_id, **_family_kwargs(args))
                sizes = ", ".join(f"{s}={len(fam.tasks(s))} sha256:{fam.task_set_sha256(s)[:12]}" for s in fam.splits)
                line += f"  [{fam.version}] {sizes}"
            except ResdEnvError as exc:
                line += f"  (unavailable: {exc})"
        print(line)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    fam = family(args.env, **_family_kwargs(args))
    if args.list:
        for split in fam.splits if args.split is None else (args.split,):
            for row in fam.tasks(split):
                print(f"{split}\t{row['task_id']}")
        return 0
    split = args.split or fam.splits[0]
    if args.task_id is not None:
        task = fam.task_by_id(args.task_id, args.split)
    else:
        rows = fam.tasks(split)
        if not 0 <= args.index < len(rows):
            raise ConfigError(f"--index {args.index} is out of range: split {split!r} has {len(rows)} tasks (0-{len(rows) - 1})")
        task = rows[args.index]
    if args.json:
        print(json.dumps(task, indent=2, ensure_ascii=False, default=str))
        return 0
    meta = {k: v for k, v in task.items() if k not in ("prompt", "messages") and not _is_bulky(v)}
    print(json.dumps(meta, indent=2, ensure_ascii=False, default=str))
    print("-" * 72)
    print(task["prompt"])
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.file:
        response = read_text_file(args.file, "--file")
    elif args.response is not None:
        response = args.response
    else:
        response = sys.stdin.read()
    [result] = verify(
        args.env, [args.task_id], [response], reward_mode=args.reward_mode, feedback=args.feedback,
        max_feedback_chars=args.max_feedback_chars, **_family_kwargs(args),
    )
    print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    fam = family(args.env, **_family_kwargs(args))
    if args.reference:
        splits = fam.splits if args.split in (None, "all") else (args.split,)
        jobs = []
        for split in splits:
            for row in fam.tasks(split):
                answer = fam.reference_response(row)
                if answer is None:
                    raise ResdEnvError(f"{fam.env_id} has no built-in reference response for task {row['task_id']}")
                jobs.append((str(row["task_id"]), answer))
    elif args.responses:
        jobs = _read_jobs(Path(args.responses))
    else:
        raise ResdEnvError("eval needs --responses FILE.jsonl or --reference")
    results = []
    bar = ProgressBar(len(jobs), label=f"eval {fam.env_id}", enabled=None if not args.progress else True)
    batch = max(1, args.batch_size)
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        results.extend(verify(
            args.env, [t for t, _ in chunk], [r for _, r in chunk], reward_mode=args.reward_mode,
            feedback=args.feedback, max_feedback_chars=args.max_feedback_chars, max_workers=args.workers,
            **_family_kwargs(args),
        ))
        bar.update(len(chunk))
    bar.close()
    if args.out:
        with Path(args.out).open("w", encoding="utf-8") as handle:
            for result in results:
                handle.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
    summary = summarize(results)
    summary["env_id"] = fam.env_id
    print(format_summary(summary))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    fam = family(args.env, **_family_kwargs(args))
    render = getattr(fam, "render_files", None)
    if render is None:
        raise ResdEnvError(f"{fam.env_id} draws no pictures; rendering is available for BouncingSim")
    task = fam.task_by_id(args.task_id)
    response = read_text_file(args.response_file, "--response-file") if args.response_file else None
    for path in render(task, response, png=args.png, gif=args.gif):
        print(path)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from gymnasium.utils.env_checker import check_env

    failures = 0
    for env_id in args.envs or list_envs():
        try:
            env = make(env_id, **_family_kwargs(args))
            skipped = ""
            try:
                check_env(env.unwrapped, skip_render_check=False)
            except MissingDependencyError as exc:  # an optional extra (pillow for pictures) is absent
                check_env(env.unwrapped, skip_render_check=True)
                skipped = f" (picture check skipped: {exc})"
            facts = env.unwrapped.family.describe()
            env.close()
            print(f"ok    {env_id} {json.dumps(facts) if facts else ''}".rstrip() + skipped)
        except DataNotFoundError as exc:  # user-provided data (Finer) that is not configured: not a failure
            print(f"skip  {env_id}: {exc}")
        except Exception as exc:  # report every env, not just the first failure
            failures += 1
            print(f"FAIL  {env_id}: {type(exc).__name__}: {exc}")
    return 1 if failures else 0


# -- helpers ----------------------------------------------------------------------------------
def summarize(results: list[Any]) -> dict[str, Any]:
    """Per-task and per-test-case accuracy, mean reward and error-type counts of verify results."""
    n = len(results)
    tests = sum(r.num_tests for r in results)
    passed_tests = sum(r.num_passed for r in results)
    return {
        "num_tasks": n,
        "per_task_accuracy": sum(r.passed for r in results) / n if n else 0.0,
        "per_test_case_accuracy": passed_tests / tests if tests else 0.0,
        "mean_score": sum(r.score for r in results) / n if n else 0.0,
        "mean_reward": sum(r.reward for r in results) / n if n else 0.0,
        "num_test_cases": tests,
        "error_types": dict(Counter(r.error_type or "none" for r in results)),
    }


def format_summary(summary: dict[str, Any]) -> str:
    errors = ", ".join(f"{k}={v}" for k, v in sorted(summary["error_types"].items()))
    return (
        f"{summary.get('env_id', '')}: {summary['num_tasks']} tasks, {summary['num_test_cases']} test cases\n"
        f"  per-task accuracy:      {summary['per_task_accuracy']:.4f}\n"
        f"  per-test-case accuracy: {summary['per_test_case_accuracy']:.4f}\n"
        f"  mean reward:            {summary['mean_reward']:.4f}\n"
        f"  outcomes:               {errors}"
    )


def read_text_file(path: str | Path, option: str) -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or binary file is a one-line ResdEnvError."""
    path = Path(path)
    if not path.is_file():
        raise ResdEnvError(f"{option} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ResdEnvError(f"{option} {path}: not UTF-8 text (byte {exc.start}); give a text file") from None
    except OSError as exc:
        raise ResdEnvError(f"{option} {path}: cannot be read ({exc.strerror or exc})") from None


def _read_jobs(path: Path) -> list[tuple[str, str]]:
    jobs = []
    for number, line in enumerate(read_text_file(path, "--responses").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise ResdEnvError(f"{path}:{number}: not valid JSON ({why}); each line must be an object") from None
        if not isinstance(row, dict) or "task_id" not in row or "response" not in row:
            raise ResdEnvError(f'{path}:{number}: each line needs "task_id" and "response" keys')
        jobs.append((str(row["task_id"]), str(row["response"])))
    return jobs


def _is_bulky(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) > 400
    return isinstance(value, (list, dict)) and len(json.dumps(value, default=str)) > 400


def parse_options(items: Sequence[str], flag: str = "--option") -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into family kwargs; values are JSON when they parse, else strings.

    Raises:
        ConfigError: an item without ``=`` or with an empty key.
    """
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r} must look like key=value, e.g. data_dir=/data/finer")
        try:
            kwargs[key] = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            kwargs[key] = value
    return kwargs


def _family_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return parse_options(getattr(args, "option", None) or [])


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resd-envs", description="Inspect, verify and evaluate resd environments.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        p.add_argument("--option", "-o", action="append", metavar="KEY=VALUE",
                       help="family option (JSON value), e.g. -o data_path=/data/finer")
        return p

    p = add("list", _cmd_list, "list environment ids")
    p.add_argument("--details", action="store_true", help="also load task sets: sizes and checksums")

    p = add("show", _cmd_show, "show a task prompt and metadata")
    p.add_argument("env")
    p.add_argument("--task-id")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--split")
    p.add_argument("--list", action="store_true", help="list every task id")
    p.add_argument("--json", action="store_true", help="print the full task row as JSON")

    for name, handler, text in (("verify", _cmd_verify, "score one response"),
                                ("eval", _cmd_eval, "score many responses")):
        p = add(name, handler, text)
        p.add_argument("env")
        p.add_argument("--reward-mode", default="binary", choices=["binary", "pass_rate"])
        p.add_argument("--feedback", default="full", choices=list(FEEDBACK_DETAILS),
                       help="feedback level; 'privileged' reveals expected outputs (teacher/human only)")
        p.add_argument("--max-feedback-chars", type=int, default=4000)
        if name == "verify":
            p.add_argument("--task-id", required=True)
            p.add_argument("--file", help="read the response from this file")
            p.add_argument("--response", help="the response text itself")
        else:
            p.add_argument("--responses", help="JSONL with task_id and response per line")
            p.add_argument("--reference", action="store_true", help="score the built-in reference solutions")
            p.add_argument("--split", help="split for --reference: train, test or all (default all)")
            p.add_argument("--out", help="write one JSON result per line here")
            p.add_argument("--summary-json", help="write the summary as JSON here")
            p.add_argument("--workers", type=int, default=None, help="worker processes (default: core count)")
            p.add_argument("--batch-size", type=int, default=256)
            p.add_argument("--progress", action="store_true", help="force the progress bar when not a terminal")

    p = add("render", _cmd_render, "draw a task (PNG, and GIF with --gif), with a response overlaid")
    p.add_argument("env")
    p.add_argument("--task-id", required=True)
    p.add_argument("--response-file", help="a response whose predictions are drawn over the reference")
    p.add_argument("--png", default="scene.png")
    p.add_argument("--gif", default=None)

    p = add("check", _cmd_check, "run gymnasium's check_env on every id")
    p.add_argument("envs", nargs="*")

    from resd_envs.fidelity.cli import add_parser as add_fidelity_parser

    add_fidelity_parser(sub)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())

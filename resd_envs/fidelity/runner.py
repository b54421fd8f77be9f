"""Run a fidelity check: pick the env's checker, read the rows, compare, summarise.

:func:`run_fidelity` is the Python API behind ``resd-envs fidelity``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resd_envs.errors import ConfigError, ResdEnvError
from resd_envs.fidelity import bouncingsim, finer, manufactoria
from resd_envs.fidelity.http import check_url
from resd_envs.fidelity.report import FidelityReport, RowError
from resd_envs.fidelity.rows import MAX_ERRORS, RowFormatError, read_jsonl
from resd_envs.registration import normalize_env_id

SAMPLES = Path(__file__).resolve().parent / "samples"


@dataclass(frozen=True)
class Checker:
    """How one env is checked: its shipped sample, its row reader and its comparison."""

    sample: str
    reader: Callable[..., Any]
    live: bool
    #: for the shipped sample only: keep rows whose difficulty is this (None = all rows)
    sample_level: str | None = None


CHECKERS: dict[str, Checker] = {
    "resd/Manufactoria-Has-v0": Checker("manufactoria.jsonl", manufactoria.read_row, True),
    "resd/BouncingSim-Easy-v0": Checker("bouncingsim.jsonl", bouncingsim.read_row, True, "easy"),
    "resd/BouncingSim-Medium-v0": Checker("bouncingsim.jsonl", bouncingsim.read_row, True, "medium"),
    "resd/Finer-v0": Checker("finer.jsonl", finer.read_row, False),
}


def sample_path(env_id: str) -> Path:
    """The golden sample shipped for ``env_id`` (inside the installed package)."""
    return SAMPLES / _checker(normalize_env_id(env_id)).sample


def _checker(env_id: str) -> Checker:
    try:
        return CHECKERS[env_id]
    except KeyError:
        raise ConfigError(f"no fidelity checker for {env_id}; available: {', '.join(CHECKERS)}") from None


def run_fidelity(
    env_id: str,
    against: str | Path | None = None,
    *,
    reference_url: str | None = None,
    max_errors: int = MAX_ERRORS,
) -> FidelityReport:
    """Compare this installation with the original benchmark on ``against`` (or the shipped sample).

    Args:
        env_id: a resd env id (``resd_envs:`` prefix allowed).
        against: a JSONL file in the env's reference format (``docs/fidelity.md``); None = the
            golden sample shipped with the package.
        reference_url: base URL of a running reference server (DELTA's Manufactoria or BouncingSim
            FastAPI app); its answers replace the reference answers recorded in the file.
        max_errors: stop reading after this many malformed rows.

    Returns:
        a :class:`FidelityReport` (``report.ok`` says whether everything agreed or differed for a
        documented reason, and every row was read).

    Raises:
        UnknownEnvError, ConfigError: unknown env, or live mode for an env without a reference server.
        ResdEnvError: the input file is missing or unreadable; the reference server failed.
    """
    env = normalize_env_id(env_id)
    checker = _checker(env)
    if max_errors < 1:
        raise ConfigError(f"max_errors={max_errors}: use 1 or more")
    base = None
    if reference_url is not None:
        if not checker.live:
            raise ConfigError(f"{env} has no reference server (ACE scores in its own process); "
                              "compare against an ACE log with --against FILE instead")
        base = check_url(reference_url)
    path = Path(against) if against is not None else SAMPLES / checker.sample
    source = str(path) if against is not None else f"shipped sample ({checker.sample})"
    report = FidelityReport(env, source, base or "file")
    rows = []
    for line, item in read_jsonl(path):
        if isinstance(item, RowFormatError):
            report.row_errors.append(RowError(line, str(item)))
        else:
            try:
                row = checker.reader(line, item, live=base is not None)
            except RowFormatError as exc:
                report.row_errors.append(RowError(line, str(exc)))
            else:
                level = checker.sample_level
                if against is None and level and getattr(row, "level", None) != level:
                    continue
                rows.append(row)
        if len(report.row_errors) >= max_errors:
            report.stopped_early = True
            break
    if not rows:
        problems = "; ".join(str(e) for e in report.row_errors[:3])
        detail = f": {problems}" if problems else " (the file is empty)"
        raise ResdEnvError(f"{path}: no row could be checked{detail}")
    if env.startswith("resd/Manufactoria"):
        if base:
            manufactoria.check_live(rows, base, report)
        else:
            manufactoria.check_rows(rows, report)
    elif env.startswith("resd/BouncingSim"):
        bouncingsim.check_rows(rows, report, base)
    else:
        finer.check_rows(rows, report)
    report.summarize()
    return report

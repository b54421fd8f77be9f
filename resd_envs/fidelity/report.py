"""The result of a fidelity run: every comparison made, the rows that could not be read, and summaries.

A :class:`Check` is one comparison of this installation's answer with the reference's for one input
(a (program, tape) pair, a response's reward, a scene at one time, a Finer response). A disagreement
that has a documented cause carries a ``reason``; it is then a *known difference*, not a failure.
Anything else that disagrees is *unexplained* and makes the run fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RowError:
    """A line of the input that could not be checked: 1-based ``line`` and what is wrong with it."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Check:
    """One comparison.

    Attributes:
        line: 1-based line of the input row it came from.
        key: a short label of the input (row id, tape, time).
        group: the summary bucket (e.g. ``program/tape``, ``G/easy``).
        agree: whether this installation and the reference gave the same answer.
        ours: this installation's answer (JSON-able).
        reference: the reference's answer (JSON-able).
        input: what was compared on (shortened for display).
        reason: for a disagreement with a documented cause, that cause (a known difference).
        note: for an agreement worth pointing out (a reference quirk we reproduce), what it is.
        value: a number summarised per group (BouncingSim: mean error over balls), or None.
    """

    line: int
    key: str
    group: str
    agree: bool
    ours: Any
    reference: Any
    input: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    note: str | None = None
    value: float | None = None

    @property
    def status(self) -> str:
        """``agree``, ``known`` (disagrees for a documented reason) or ``DISAGREE``."""
        if self.agree:
            return "agree"
        return "known" if self.reason else "DISAGREE"


@dataclass
class FidelityReport:
    """Everything a fidelity run found.

    Attributes:
        env_id: the environment checked.
        source: the input file, or ``shipped sample (<file>)``.
        reference: where the reference answers came from (``file`` or the server URL).
        checks: every comparison, in input order.
        row_errors: rows that could not be checked (they are skipped).
        groups: per-group summary (see :meth:`summarize`); env modules may add fields.
        worst: the worst cases, env-specific dicts (BouncingSim: largest errors).
        extras: env-specific data for the HTML/PNG report (not part of the JSON contract).
        stopped_early: the run hit the malformed-row limit and stopped reading.
    """

    env_id: str
    source: str
    reference: str
    checks: list[Check] = field(default_factory=list)
    row_errors: list[RowError] = field(default_factory=list)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    worst: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False

    @property
    def total(self) -> int:
        return len(self.checks)

    @property
    def agreed(self) -> int:
        return sum(c.agree for c in self.checks)

    @property
    def known(self) -> int:
        return sum(c.status == "known" for c in self.checks)

    @property
    def unexplained(self) -> int:
        return sum(c.status == "DISAGREE" for c in self.checks)

    @property
    def ok(self) -> bool:
        """True when every check agrees or differs for a documented reason and every row was read."""
        return self.total > 0 and self.unexplained == 0 and not self.row_errors

    def disagreements(self) -> list[Check]:
        return [c for c in self.checks if not c.agree]

    def summarize(self) -> None:
        """Fill :attr:`groups` with counts per group (keeps fields env modules already added)."""
        for check in self.checks:
            g = self.groups.setdefault(check.group, {})
            for name in ("checks", "agree", "known", "disagree"):
                g.setdefault(name, 0)
        for g in self.groups.values():
            g.update(checks=0, agree=0, known=0, disagree=0)
        for check in self.checks:
            g = self.groups[check.group]
            g["checks"] += 1
            g["agree"] += check.agree
            g["known"] += check.status == "known"
            g["disagree"] += check.status == "DISAGREE"
        for g in self.groups.values():
            g["agreement"] = g["agree"] / g["checks"] if g["checks"] else 0.0

    def one_line(self) -> str:
        """``resd/X: 299/300 agree (99.67%), 1 known difference, 0 unexplained, 0 malformed rows``."""
        share = 100.0 * self.agreed / self.total if self.total else 0.0
        plural = "" if self.known == 1 else "s"
        return (
            f"{self.env_id}: {self.agreed}/{self.total} agree ({share:.2f}%), {self.known} known difference{plural}, "
            f"{self.unexplained} unexplained, {len(self.row_errors)} malformed row"
            f"{'' if len(self.row_errors) == 1 else 's'} -> {'OK' if self.ok else 'FAIL'}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON report (documented in ``docs/fidelity.md``)."""
        self.summarize()
        return {
            "env_id": self.env_id,
            "source": self.source,
            "reference": self.reference,
            "ok": self.ok,
            "totals": {
                "checks": self.total,
                "agree": self.agreed,
                "known_differences": self.known,
                "unexplained": self.unexplained,
                "malformed_rows": len(self.row_errors),
                "agreement": self.agreed / self.total if self.total else 0.0,
            },
            "stopped_early": self.stopped_early,
            "groups": self.groups,
            "worst": self.worst,
            "disagreements": [{**asdict(c), "status": c.status} for c in self.disagreements()],
            "malformed_rows": [asdict(e) for e in self.row_errors],
            "checks": [{**asdict(c), "status": c.status} for c in self.checks],
        }

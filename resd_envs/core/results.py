"""Typed results shared by every environment.

A family's scorer returns an :class:`Evaluation` (per-test outcomes, an error type, feedback text);
the env turns it into a reward and an info dict, and :func:`resd_envs.verify` into a
:class:`VerifyResult`. Everything here is plain data: picklable and JSON-serialisable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from resd_envs.errors import ConfigError

#: The closed set of ``error_type`` values. ``None`` means the submission ran and was judged.
ERROR_TYPES: tuple[str, ...] = (
    "no_code",
    "format_error",
    "parse_error",
    "runtime_error",
    "timeout",
    "memory_limit",
    "output_limit",
    "wrong_answer",
    "sandbox_error",
)

RewardMode = Literal["binary", "pass_rate"]
FeedbackDetail = Literal["full", "summary", "minimal", "privileged"]
REWARD_MODES: tuple[str, ...] = ("binary", "pass_rate")
#: Feedback levels the policy may read: they say what failed and why, never a hidden expected output.
POLICY_FEEDBACK_DETAILS: tuple[str, ...] = ("full", "summary", "minimal")
#: The level that reveals hidden expected outputs (expected positions, expected verdicts of failed
#: tapes, gold tags): for a teacher context or a human, never for the policy's next attempt.
PRIVILEGED = "privileged"
FEEDBACK_DETAILS: tuple[str, ...] = (*POLICY_FEEDBACK_DETAILS, PRIVILEGED)


@dataclass(frozen=True)
class TestResult:
    """Outcome of one test case.

    Attributes:
        id: stable id of the test case within its task (e.g. ``"t07"`` or ``"t=0.3"``).
        passed: whether the submission got this case right.
        message: one short line saying what happened (shown in feedback and logs).
        score: credit for this case in [0, 1]; 1.0/0.0 for pass/fail unless the family grades finer.
    """

    __test__ = False  # not a pytest test class

    id: str
    passed: bool
    message: str = ""
    score: float | None = None

    @property
    def credit(self) -> float:
        """``score``, or the pass/fail value (1.0/0.0) when the family gave none."""
        return float(self.passed if self.score is None else self.score)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form used inside ``info``; ``score`` is :attr:`credit`."""
        return {"id": self.id, "passed": bool(self.passed), "message": self.message, "score": self.credit}


@dataclass(frozen=True)
class Evaluation:
    """A family scorer's verdict on one response to one task.

    ``passed`` is True only when every test case passed and there was no error. ``score`` is the
    mean credit over the ``num_tests`` cases (each :attr:`TestResult.score`, 1.0/0.0 for pass/fail by
    default): the fraction passed unless the family grades finer; 0.0 when the submission could not be
    run at all.

    ``feedback`` is the text at the requested detail (policy-safe unless the detail was
    ``"privileged"``); ``privileged_feedback`` is always the revealing text, for a teacher or a human.
    """

    test_results: tuple[TestResult, ...]
    error_type: str | None
    feedback: str
    num_tests: int = -1
    extra: dict[str, Any] = field(default_factory=dict)
    privileged_feedback: str = ""

    def __post_init__(self) -> None:
        if self.error_type is not None and self.error_type not in ERROR_TYPES:
            raise ValueError(f"error_type {self.error_type!r} is not one of {ERROR_TYPES}")
        if self.num_tests < 0:
            object.__setattr__(self, "num_tests", len(self.test_results))

    @property
    def num_passed(self) -> int:
        return sum(1 for t in self.test_results if t.passed)

    @property
    def score(self) -> float:
        if not self.num_tests:
            return 0.0
        return sum(t.credit for t in self.test_results) / self.num_tests

    @property
    def passed(self) -> bool:
        return self.num_tests > 0 and self.num_passed == self.num_tests and self.error_type in (None,)

    def reward(self, mode: str) -> float:
        """The scalar reward: 1.0/0.0 for ``binary``, :attr:`score` for ``pass_rate``."""
        if mode == "binary":
            return 1.0 if self.passed else 0.0
        if mode == "pass_rate":
            return float(self.score)
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {mode!r}")


@dataclass(frozen=True)
class VerifyResult:
    """One scored submission, as returned by :func:`resd_envs.verify`.

    ``feedback`` is policy-safe at the levels ``full``/``summary``/``minimal``; ``privileged_feedback``
    carries the hidden expected outputs and must only reach a teacher context or a human.
    """

    task_id: str
    reward: float
    score: float
    passed: bool
    num_tests: int
    num_passed: int
    error_type: str | None
    feedback: str
    test_results: tuple[dict[str, Any], ...]
    extra: dict[str, Any] = field(default_factory=dict)
    privileged_feedback: str = ""

    @classmethod
    def from_evaluation(cls, task_id: str, evaluation: Evaluation, reward_mode: str) -> VerifyResult:
        return cls(
            task_id=task_id,
            reward=evaluation.reward(reward_mode),
            score=float(evaluation.score),
            passed=evaluation.passed,
            num_tests=evaluation.num_tests,
            num_passed=evaluation.num_passed,
            error_type=evaluation.error_type,
            feedback=evaluation.feedback,
            test_results=tuple(t.as_dict() for t in evaluation.test_results),
            extra=dict(evaluation.extra),
            privileged_feedback=evaluation.privileged_feedback,
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["test_results"] = list(self.test_results)
        return out


def scoring_option_problems(
    reward_mode: str, feedback: str, max_feedback_chars: int, max_attempts: int | None = None
) -> list[str]:
    """One line per invalid scoring option, naming the value and the fix (empty when all are valid).

    ``max_attempts`` (an env's attempts per episode) is checked only when given. With more than one
    attempt the ``privileged`` level is refused: the next attempt could copy the expected outputs it
    reveals.
    """
    problems = []
    if reward_mode not in REWARD_MODES:
        problems.append(f"reward_mode={reward_mode!r}: use one of {', '.join(REWARD_MODES)}")
    if feedback not in FEEDBACK_DETAILS:
        problems.append(f"feedback={feedback!r}: use one of {', '.join(FEEDBACK_DETAILS)}")
    if max_attempts is not None:
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            problems.append(f"max_attempts={max_attempts!r}: use an integer >= 1")
        elif feedback == PRIVILEGED and max_attempts > 1:
            problems.append(
                f"feedback={PRIVILEGED!r} with max_attempts={max_attempts}: privileged feedback reveals the "
                "hidden expected outputs, so the next attempt could copy them; use 'full', 'summary' or "
                "'minimal' and read info['privileged_feedback'] for a teacher"
            )
    if not isinstance(max_feedback_chars, int) or max_feedback_chars < 0:
        problems.append(f"max_feedback_chars={max_feedback_chars!r}: use an integer >= 0 (0 = no cap)")
    return problems


def check_scoring_options(
    reward_mode: str, feedback: str, max_feedback_chars: int, max_attempts: int | None = None
) -> None:
    """Raise :class:`ConfigError` listing every invalid option (see :func:`scoring_option_problems`)."""
    problems = scoring_option_problems(reward_mode, feedback, max_feedback_chars, max_attempts)
    if problems:
        raise ConfigError("invalid scoring options:\n  - " + "\n  - ".join(problems))


def check_detail(detail: str) -> str:
    """Return ``detail`` when it is a feedback level, else raise ConfigError naming the levels."""
    if detail not in FEEDBACK_DETAILS:
        raise ConfigError(f"feedback detail {detail!r}: use one of {', '.join(FEEDBACK_DETAILS)}")
    return detail


def cap_text(text: str, max_chars: int, *, marker: str = "\n[... feedback truncated: {n} more characters]") -> str:
    """Truncate ``text`` to at most ``max_chars`` characters, saying how much was cut.

    The marker itself counts toward the cap, so the result never exceeds ``max_chars``
    (unless ``max_chars`` is smaller than the marker, in which case a hard cut is made).
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    tail = marker.format(n=len(text) - max_chars)
    keep = max_chars - len(tail)
    if keep <= 0:
        return text[:max_chars]
    tail = marker.format(n=len(text) - keep)
    while keep > 0 and keep + len(tail) > max_chars:  # the count may have gained a digit
        keep -= 1
        tail = marker.format(n=len(text) - keep)
    return text[:keep] + tail

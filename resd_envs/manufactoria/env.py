"""The gymnasium env of Manufactoria-Has: ``resd/Manufactoria-Has-v0``."""

from __future__ import annotations

from resd_envs.core.env import TaskEnv
from resd_envs.manufactoria.family import ManufactoriaHasFamily


class ManufactoriaHasEnv(TaskEnv):
    """Write a Manufactoria factory (a tape-machine program) that accepts exactly the tapes a rule describes.

    ## Description
    The 874 'has' problems of DELTA: accept tapes over R, B, Y, G that contain enough of some colours
    (``contains_count``), a pattern as a subsequence (``contains_ordered``) or as a substring
    (``contains_substring``). The model answers with a program in a ```manufactoria block; it is parsed
    and run with DELTA's exact semantics on ~18-30 labelled tapes per problem.

    ## Action space
    ``AnyText``: the full model response (reasoning allowed; the last fenced block is graded).

    ## Observation space
    ``AnyText``: the prompt (DSL guide + task) after ``reset``; the feedback text after ``step``.

    ## Rewards
    ``binary`` (default): 1.0 when every tape gets the right verdict, else 0.0 (parse errors: 0.0).
    ``pass_rate``: the fraction of tapes with the right verdict (parse errors: 0.0).

    ## Starting state
    ``reset`` draws a problem of the split with ``self.np_random`` (or takes ``options={"task_id": ...}``).

    ## Episode end
    Terminated when the answer passes or ``max_attempts`` answers were given; never truncated.

    ## Feedback
    The observation is policy-safe at ``feedback="full"`` (default), ``"summary"`` and ``"minimal"``: no
    failed test tape is named (a counterexample outside the scored sets is shown instead).
    ``info["privileged_feedback"]`` lists the failed tapes with their expected verdicts, for a teacher
    context (RESD) or a human; ``feedback="privileged"`` is refused with ``max_attempts > 1``.

    ## Hidden robustness tapes
    >= 120 seeded tapes per problem, never shown; ``info["extra"]["hidden_pass_rate"]`` etc. on every
    step. ``reward_tests="reference"`` (default, DELTA-faithful) | ``"hidden"`` | ``"both"``.

    ## Arguments
    ``split`` ("train": 742, "test": 132), ``reward_mode``, ``max_attempts``, ``feedback``
    ("full" | "summary" | "minimal" | "privileged"), ``max_feedback_chars``, ``render_mode`` ("ansi"),
    ``reward_tests``.

    ## Version history
    * v0: DELTA's 874 problems and split; seeded test tapes; our own prompt.
    """

    family_class = ManufactoriaHasFamily

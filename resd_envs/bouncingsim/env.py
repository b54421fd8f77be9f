"""The gymnasium env of BouncingSim (``resd/BouncingSim-Easy-v0``, ``resd/BouncingSim-Medium-v0``)."""

from __future__ import annotations

from typing import Any, ClassVar

from resd_envs.bouncingsim.family import BouncingSimFamily
from resd_envs.core.env import TaskEnv


class BouncingSimEnv(TaskEnv):
    """Predict bouncing polygons with a Python program.

    ## Description
    Each task is a 2-D scene: one kinematic regular-polygon container and 3 (Easy) or 4-5 (Medium)
    regular-polygon balls of circumradius 20, no gravity. The model answers with a program that
    defines ``predict_position(t)`` returning ``[[x, y], ...]`` for every ball. The program runs in
    a sandbox at 15 hidden times (0.1 ... 1.5 s); the answers come from a pymunk simulation.

    ## Action space
    ``AnyText``: the model's response; the last fenced ``python`` block is the program.

    ## Observation space
    ``AnyText``: the scene prompt after ``reset``; the feedback text after ``step``.

    ## Rewards
    A test time passes when the mean over balls of the distance to the true centre is <= 50.
    ``reward_mode="binary"`` (default): 1.0 iff all 15 pass; ``"pass_rate"``: the passed fraction.

    ## Feedback
    Policy-safe at ``feedback="full"`` (default), ``"summary"``, ``"minimal"``: no expected position and
    no exact per-ball distance. ``info["privileged_feedback"]`` adds them, for a teacher context or a
    human; ``feedback="privileged"`` is refused with ``max_attempts > 1``.

    ## Episode end
    After a passing attempt or ``max_attempts`` attempts (``terminated=True``).

    ## Arguments
    The common ones (``split``, ``reward_mode``, ``max_attempts``, ``feedback``,
    ``max_feedback_chars``, ``render_mode``) plus: ``level`` ("easy" | "medium", or any level with
    generated tasks), ``family`` ("G" default; "A"-"F" generate tasks), ``sandbox`` ("auto",
    "bwrap", "unshare", "rlimit"), ``call_timeout_s`` (1.0), ``total_timeout_s``, ``memory_mb``,
    ``scenes`` (user scenes: list of dicts or a JSONL path), ``num_train`` / ``num_test`` / ``seed``
    (generated sets).

    ## Render modes
    ``"ansi"``: the last prompt or feedback text; ``"rgb_array"``: a picture of the scene with the
    reference trajectory and, after a step, the submission's predictions (needs pillow).

    ## Version History
    * v0: first release (pymunk oracle, 640/100 Easy and 320/100 Medium G tasks).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 10}
    family_class = BouncingSimFamily

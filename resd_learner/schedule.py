"""The RESD → GRPO schedule: when a self-distillation run hands over to GRPO.

The paper (§4.4) suggests using RESD to reach a higher-success regime quickly and then switching to
the stabler reward-based GRPO once grouped rollouts give a reliable signal. :class:`GrpoSwitch` owns
that decision and nothing else: it is fed the training success rate of every finished outer batch and
says when to switch. The trainer owns what a switch changes (rollouts per prompt, loss, no teacher and
no context update afterwards).

Rule: after outer batch b, let ``recent`` be the success rates of the last ``window`` outer batches.
The run switches when ``len(recent) == window`` and ``mean(recent) >= success_rate``. The switch is
one-way; the state (phase, recent rates, where it happened) is JSON and goes into every checkpoint so
that a resumed run continues in the phase it was in.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

SELF_DISTILLATION = "self_distillation"
GRPO = "grpo"
PHASES = (SELF_DISTILLATION, GRPO)
"""Phase names; the metric ``method/phase`` is the index in this tuple (0 then 1)."""


class GrpoSwitch:
    """Windowed success-rate trigger for the one-way switch from self-distillation to GRPO.

    Args:
        success_rate: switch when the windowed mean success rate is >= this value (in [0, 1]).
        window: number of most recent outer batches averaged (>= 1).
    """

    def __init__(self, success_rate: float, window: int) -> None:
        if isinstance(success_rate, bool) or not isinstance(success_rate, (int, float)) \
                or not 0.0 <= success_rate <= 1.0:
            raise ValueError(f"success_rate={success_rate!r} must be a number in [0, 1] "
                             "(method.switch_to_grpo.success_rate)")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window={window!r} must be a positive number of outer batches "
                             "(method.switch_to_grpo.window)")
        self.success_rate = float(success_rate)
        self.window = window
        self.phase = SELF_DISTILLATION
        self.recent: deque[float] = deque(maxlen=window)
        self.switched_at: dict[str, Any] | None = None

    @property
    def is_grpo(self) -> bool:
        return self.phase == GRPO

    @property
    def phase_index(self) -> int:
        return PHASES.index(self.phase)

    def windowed_rate(self) -> float | None:
        """Mean success rate over the recent outer batches (None before any batch)."""
        return sum(self.recent) / len(self.recent) if self.recent else None

    def observe(self, batch_success_rate: float, *, step: int, batch: int) -> bool:
        """Record the success rate of finished outer batch ``batch`` (0-based) at global ``step``.

        Returns True exactly when this observation triggers the switch. Once in GRPO nothing changes.
        """
        if isinstance(batch_success_rate, bool) or not isinstance(batch_success_rate, (int, float)) \
                or not math.isfinite(batch_success_rate):
            raise ValueError(f"batch_success_rate={batch_success_rate!r} must be a finite number")
        if self.is_grpo:
            return False
        self.recent.append(float(batch_success_rate))
        rate = self.windowed_rate()
        if len(self.recent) < self.window or rate is None or rate < self.success_rate:
            return False
        self.phase = GRPO
        self.switched_at = {"step": int(step), "after_batch": int(batch), "windowed_success_rate": rate,
                            "recent": list(self.recent), "threshold": self.success_rate, "window": self.window}
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "recent": list(self.recent), "switched_at": self.switched_at,
                "success_rate": self.success_rate, "window": self.window}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; raises ``ValueError`` when the state is malformed."""
        try:
            phase = state["phase"]
            recent = [float(x) for x in state["recent"]]
            switched_at = state.get("switched_at")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"schedule state is malformed ({exc!r}); expected GrpoSwitch.state_dict()") from exc
        if phase not in PHASES:
            raise ValueError(f"schedule state has phase {phase!r}; expected one of {list(PHASES)}")
        if phase == GRPO and not isinstance(switched_at, dict):
            raise ValueError("schedule state is in the grpo phase but does not say where it switched")
        self.phase = phase
        self.recent = deque(recent[-self.window:], maxlen=self.window)
        self.switched_at = switched_at

"""Run outputs for humans and tools: ``metrics.jsonl``, TensorBoard scalars and a progress bar.

Each record is one flat JSON object per line: ``{"step": int, "kind": "train"|"val", ...}`` with
slash-separated keys (``rollout/reward_mean``, ``loss/distill``, ``time/step_s``,
``val/mean@4/per_task``, ...). Only the main rank writes. On resume, :func:`truncate_jsonl` drops the
records written after the checkpoint, so the files read as if the run had never stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep only the lines of ``path`` whose ``step`` is <= ``max_step`` (unparsable lines are dropped)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(record.get("step", 0)) <= max_step:
            kept.append(line)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
    tmp.replace(path)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


class MetricsLogger:
    """Appends records to ``RUN_DIR/metrics.jsonl`` and mirrors numeric values to TensorBoard.

    Args:
        run_dir: the run directory.
        enabled: False on non-main ranks (nothing is written).
        tensorboard: also write ``RUN_DIR/tb/``.
        progress_total: total optimizer steps for the progress bar (None: no bar).
        initial_step: where the bar starts (on resume).
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True,
                 progress_total: int | None = None, initial_step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._writer = None
        self._bar = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        if progress_total is not None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=progress_total, initial=initial_step, desc="resd-learn", unit="step",
                             dynamic_ncols=True)

    def log(self, step: int, kind: str, values: dict[str, Any]) -> dict[str, Any]:
        """Write one record and return it."""
        record = {"step": int(step), "kind": kind, **{k: _jsonable(v) for k, v in values.items()}}
        if not self.enabled:
            return record
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=False) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if key in ("step", "kind") or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                if math.isfinite(value):
                    self._writer.add_scalar(key if kind == "train" or key.startswith("val/") else f"{kind}/{key}",
                                            value, step)
            self._writer.flush()
        return record

    def advance(self, step: int, summary: dict[str, Any]) -> None:
        """Move the progress bar to ``step`` and show a few headline numbers."""
        if self._bar is None:
            return
        self._bar.update(max(0, step - self._bar.n))
        shown = {k.split("/")[-1]: f"{v:.3g}" for k, v in summary.items() if isinstance(v, (int, float))}
        self._bar.set_postfix(shown, refresh=True)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

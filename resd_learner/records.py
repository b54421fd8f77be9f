"""Per-step run records a person can read: rollouts, context outputs, teacher prompts, the playbook.

The trainer calls :meth:`RunRecords.write_step` once per training step (main rank) with what it
already holds; this module only turns it into files and reads them back. Layout under
``RUN_DIR/records/``:

- ``step_<N>.jsonl.gz`` (N zero-padded to 6 digits): one JSON object per line, each with ``type``:

  * ``"rollout"``: ``example_id``, ``group_index``, ``response``, ``reward``, ``score``, ``passed``,
    ``feedback``, ``finish_reason``, ``response_tokens``;
  * ``"context"``: one reflector / success-tagger / curator output: ``kind`` ("reflection",
    "success_tag" or "curation"), ``example_id``, ``group_index``, ``text`` (the model's output,
    thinking stripped), ``error`` ("" when it parsed) and, for curations, ``operations`` (the ADD
    operations proposed) and ``added`` (the entry ids they produced);
  * ``"teacher_prompt"``: ``example_id``, ``group_index``, ``text`` (the teacher's context up to the
    response, decoded), ``sections``, ``distill``, ``skip_reason``, ``weight``;

- ``playbook_<N>.md``: the playbook after step N's context update ("" when empty).
- ``val_<N>.jsonl.gz``: every reply of the validation run at step N (0 = before training), one
  ``"validation"`` record each, with the rollout fields above (``group_index`` = the reply's index
  among the prompt's ``eval.n``); :func:`validation_outcomes` counts them by feedback head.

Everything is plain JSON, so ``zcat RUN_DIR/records/step_000001.jsonl.gz | jq .`` reads a step.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDS_DIR = "records"
RECORD_TYPES = ("rollout", "context", "teacher_prompt")
_STEP_FILE = re.compile(r"^step_(\d+)\.jsonl\.gz$")
_VAL_FILE = re.compile(r"^val_(\d+)\.jsonl\.gz$")
FEEDBACK_HEAD_CHARS = 40
"""A feedback head longer than this is cut (see :func:`feedback_head`)."""


def step_file(run_dir: str | Path, step: int) -> Path:
    """``RUN_DIR/records/step_<N>.jsonl.gz``."""
    return Path(run_dir) / RECORDS_DIR / f"step_{int(step):06d}.jsonl.gz"


def playbook_file(run_dir: str | Path, step: int) -> Path:
    """``RUN_DIR/records/playbook_<N>.md``."""
    return Path(run_dir) / RECORDS_DIR / f"playbook_{int(step):06d}.md"


def val_file(run_dir: str | Path, step: int) -> Path:
    """``RUN_DIR/records/val_<N>.jsonl.gz``."""
    return Path(run_dir) / RECORDS_DIR / f"val_{int(step):06d}.jsonl.gz"


def rollout_records(samples: Sequence[Any]) -> list[dict[str, Any]]:
    """Records of scored rollouts (the trainer's ``Sample`` objects: ``task``, ``response_text``, ...)."""
    out = []
    for s in samples:
        score = getattr(s, "score", None)
        out.append({
            "type": "rollout",
            "example_id": str(s.task.example_id),
            "group_index": int(s.group_index),
            "response": str(s.response_text),
            "reward": float(score.reward) if score is not None else 0.0,
            "score": float(score.score) if score is not None else 0.0,
            "passed": bool(score.passed) if score is not None else False,
            "feedback": str(score.feedback) if score is not None else "",
            "finish_reason": str(getattr(s, "finish_reason", "")),
            "response_tokens": len(getattr(s, "response_ids", []) or []),
        })
    return out


def teacher_prompt_records(items: Sequence[Any], samples: Sequence[Any], tokenizer: Any) -> list[dict[str, Any]]:
    """Records of the teacher prompts of ``items`` (``TrainItem``), aligned with ``samples``.

    The text is the teacher sequence before the response (``teacher_ids[:teacher_start]``), decoded
    with special tokens kept so the chat layout stays visible; items without a teacher sequence
    (GRPO, or skipped samples) are recorded with an empty text.
    """
    if len(items) != len(samples):
        raise ValueError(f"teacher_prompt_records got {len(items)} items for {len(samples)} samples; pass one each")
    out = []
    for item, sample in zip(items, samples):
        ids = list(getattr(item, "teacher_ids", []) or [])[: int(getattr(item, "teacher_start", 0))]
        out.append({
            "type": "teacher_prompt",
            "example_id": str(sample.task.example_id),
            "group_index": int(sample.group_index),
            "text": tokenizer.decode(ids, skip_special_tokens=False) if ids else "",
            "sections": list(getattr(item, "sections", ())),
            "distill": bool(getattr(item, "distill", False)),
            "skip_reason": str(getattr(item, "skip_reason", "")),
            "weight": float(getattr(item, "weight", 1.0)),
        })
    return out


def context_records(outputs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records of the context updater's outputs (``ContextUpdate.outputs``)."""
    return [{"type": "context", **dict(o)} for o in outputs]


class RunRecords:
    """Writes one records file and one playbook file per step under ``RUN_DIR/records/``.

    The folder is created by the first :meth:`write_step`, so making a ``RunRecords`` leaves the run
    directory untouched (the new-run guard inspects it later).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def write_step(self, step: int, records: Sequence[Mapping[str, Any]], playbook: str | None = None) -> Path:
        """Write ``records`` (dicts with a ``type`` from :data:`RECORD_TYPES`) for ``step``; a rerun of the
        same step (a resumed run) replaces the file. ``playbook`` (when not None) goes to ``playbook_<N>.md``.

        Raises:
            ValueError: a record without a known ``type`` (names the index and the type).
        """
        for i, rec in enumerate(records):
            if rec.get("type") not in RECORD_TYPES:
                raise ValueError(f"record {i} of step {step} has type {rec.get('type')!r}; use one of {RECORD_TYPES}")
        path = _write_jsonl_gz(step_file(self.run_dir, step), records)
        if playbook is not None:
            playbook_file(self.run_dir, step).write_text(playbook, encoding="utf-8")
        return path

    def write_validation(self, step: int, samples: Sequence[Any]) -> Path:
        """Write every validation reply of ``step`` (scored ``Sample`` objects) to ``val_<N>.jsonl.gz``;
        a rerun of the same validation replaces the file."""
        records = [{**rec, "type": "validation"} for rec in rollout_records(samples)]
        return _write_jsonl_gz(val_file(self.run_dir, step), records)


def _write_jsonl_gz(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``records`` as gzip JSON lines to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as handle:
        for rec in records:
            handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path} is not readable gzip JSON lines ({exc}); delete it or rerun that step") from exc


@dataclass
class StepRecords:
    """One step's records read back, split by type."""

    step: int
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    context: list[dict[str, Any]] = field(default_factory=list)
    teacher_prompts: list[dict[str, Any]] = field(default_factory=list)
    playbook: str | None = None


def read_records(run_dir: str | Path) -> list[StepRecords]:
    """Every step's records under ``RUN_DIR/records/``, in step order ([] when there are none).

    A corrupt file (truncated gzip, a bad JSON line) raises ``ValueError`` naming the file.
    """
    folder = Path(run_dir) / RECORDS_DIR
    if not folder.is_dir():
        return []
    steps = []
    for path in folder.iterdir():
        match = _STEP_FILE.match(path.name)
        if match:
            steps.append((int(match.group(1)), path))
    out = []
    for step, path in sorted(steps):
        rec = StepRecords(step)
        for row in _read_jsonl_gz(path):
            {"rollout": rec.rollouts, "context": rec.context, "teacher_prompt": rec.teacher_prompts}.get(
                row.get("type"), []).append(row)
        pb = playbook_file(run_dir, step)
        rec.playbook = pb.read_text(encoding="utf-8") if pb.is_file() else None
        out.append(rec)
    return out


def read_validations(run_dir: str | Path) -> dict[int, list[dict[str, Any]]]:
    """Every recorded validation under ``RUN_DIR/records/``: step -> its reply records, in step order
    ({} when there are none). A corrupt file raises ``ValueError`` naming it."""
    folder = Path(run_dir) / RECORDS_DIR
    if not folder.is_dir():
        return {}
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _VAL_FILE.match(p.name)))
    return {step: _read_jsonl_gz(path) for step, path in found}


def feedback_head(record: Mapping[str, Any]) -> str:
    """The kind of outcome a reply record had: "passed" when it passed, else its feedback up to the first
    ``:`` or ``.`` (at most :data:`FEEDBACK_HEAD_CHARS` characters; "(no feedback)" when empty). FinerMini's
    feedback starts "Wrong: ..." or "No answer read: ...", so the heads separate a wrong tag from a reply
    that named no candidate."""
    if record.get("passed"):
        return "passed"
    text = str(record.get("feedback", "")).strip()
    head = re.split(r"[:.\n]", text, maxsplit=1)[0].strip() if text else ""
    if not head:
        return "(no feedback)"
    return head if len(head) <= FEEDBACK_HEAD_CHARS else head[: FEEDBACK_HEAD_CHARS - 3].rstrip() + "..."


def validation_outcomes(validations: Mapping[int, Sequence[Mapping[str, Any]]]) -> dict[int, dict[str, int]]:
    """Per validation step, how many replies had each :func:`feedback_head` (most frequent first)."""
    out: dict[int, dict[str, int]] = {}
    for step, rows in validations.items():
        counts: dict[str, int] = {}
        for row in rows:
            head = feedback_head(row)
            counts[head] = counts.get(head, 0) + 1
        out[step] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def collect_step_records(samples: Sequence[Any], update: Any, items: Sequence[Any], item_samples: Sequence[Any],
                         tokenizer: Any) -> list[dict[str, Any]]:
    """All records of one step: every rollout, the context update's outputs (``update`` may be None,
    e.g. GRPO) and the teacher prompts of ``items`` (this rank's training items, aligned with
    ``item_samples``)."""
    records = rollout_records(samples)
    if update is not None:
        records += context_records(getattr(update, "outputs", []))
    return records + teacher_prompt_records(items, item_samples, tokenizer)

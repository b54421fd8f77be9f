"""The Finer task family: ACE's batched FiNER-139 records, scored the ACE way.

The data is not shipped (FiNER-139 is CC-BY-SA-4.0). The family reads ACE-format JSONL files from a
folder the user names, with ``data_dir=`` (alias ``data_path=``) or the ``RESD_FINER_DATA``
environment variable. A folder holds the standard files, one per split:

=============== ============================================ ==========================================
split           file                                         what it is
=============== ============================================ ==========================================
``test``        ``finer_val_batched_500_samples.jsonl``      the 500 records RESD reports on (ACE val)
``test_subset`` ``finer_test_subset_006_seed42.jsonl``       ACE's 441-record test subset
``train``       ``finer_train_batched_1000_samples.jsonl``   ACE/RESD's 1000-record train file, or one
                                                             built with :mod:`resd_envs.finer.builder`
=============== ============================================ ==========================================

``data_dir`` may also name a single JSONL file: it then serves as the ``test`` split. Any other
file can be added as a named split with ``files={"name": "/path/x.jsonl"}`` (a standard name there
replaces the folder's file), or used ad hoc with ``split="file:/path/x.jsonl"``.

``splits`` is set per instance: ``test`` always (it is the default), ``train`` and ``test_subset``
only when their file exists, then the ``files`` names. Asking for a standard split whose file is
missing raises :class:`~resd_envs.errors.DataNotFoundError` saying where to get it.

Task ids are ``<file stem>-<record index, 4 digits>-<first 8 hex of sha256(context NUL target)>``,
e.g. ``finer_val_batched_500_samples-0007-1a2b3c4d``: stable across runs, machines and split names.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from resd_envs.core.family import Task, TaskFamily, sha256_of_rows
from resd_envs.core.results import PRIVILEGED, Evaluation, cap_text, check_detail
from resd_envs.errors import ConfigError, DataNotFoundError
from resd_envs.finer.feedback import FEEDBACK_STYLES, error_type, question_results, render, verdicts
from resd_envs.finer.labels import LABEL_SET, LABELS
from resd_envs.finer.prompt import PROMPT_STYLES, build_prompt, reference_answer
from resd_envs.finer.records import Question, read_records
from resd_envs.finer.scoring import score

#: Environment variable naming the data folder (or a single test file).
DATA_ENV_VAR = "RESD_FINER_DATA"
#: File name of each standard split inside the data folder.
STANDARD_FILES: dict[str, str] = {
    "train": "finer_train_batched_1000_samples.jsonl",
    "test": "finer_val_batched_500_samples.jsonl",
    "test_subset": "finer_test_subset_006_seed42.jsonl",
}
_FILE_PREFIX = "file:"
_SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_WHERE_TO_GET = {
    "test": (
        "Get it from the ACE repository (github.com/ace-agent/ace, folder finance/data/ at commit ba78d34; "
        "eval/finance/data/ in later commits) and put it in the data folder."
    ),
    "test_subset": (
        "Get it from the ACE repository (github.com/ace-agent/ace, folder finance/data/ at commit ba78d34) "
        "and put it in the data folder."
    ),
    "train": (
        "ACE's 1000-record train file is missing from public ACE snapshots; if you have a copy, put it in "
        "the data folder. Otherwise build a comparable one from FiNER-139 with "
        "`python -m resd_envs.finer.builder --out DIR/finer_train_batched_1000_samples.jsonl` "
        "(see docs/finer.md), or name any ACE-format file with files={'train': '/path/train.jsonl'}."
    ),
}


class FinerFamily(TaskFamily):
    """FiNER-139 XBRL tagging: 4 entity questions per record, positional ACE scoring.

    Each question is one test case (``TestResult`` id ``q1``..``qN``), so ``reward_mode="pass_rate"``
    gives ACE's per-record entity accuracy and ``"binary"`` its all-correct flag.

    Args:
        data_dir: folder holding the standard files (or one JSONL file used as ``test``); when None,
            the ``RESD_FINER_DATA`` environment variable is used.
        data_path: alias of ``data_dir``.
        files: extra or replacement splits, ``{"name": "/path/file.jsonl"}``.
        prompt_style: ``"answer_tags"`` (record + ask for ``<answer>`` tags) or ``"raw"`` (record only).
        feedback_style: ``"detailed"`` (per question), ``"ace"`` (ACE's reflector input) or ``"resd"``.
        reveal_gold: include the gold tags in the privileged feedback (ACE's default and RESD's
            behaviour: the reflector / teacher sees them). The policy-visible levels (``full``,
            ``summary``, ``minimal``) never show gold tags; ``feedback="privileged"`` or
            ``Evaluation.privileged_feedback`` gives the text with them.
    """

    env_id: ClassVar[str] = "resd/Finer-v0"
    version: ClassVar[str] = "v0"
    splits: ClassVar[tuple[str, ...]] = ("train", "test", "test_subset")
    runs_code: ClassVar[bool] = False

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        data_path: str | os.PathLike[str] | None = None,
        files: Mapping[str, str | os.PathLike[str]] | None = None,
        prompt_style: str = "answer_tags",
        feedback_style: str = "detailed",
        reveal_gold: bool = True,
    ) -> None:
        super().__init__()
        problems = []
        if prompt_style not in PROMPT_STYLES:
            problems.append(f"prompt_style={prompt_style!r}: use one of {', '.join(PROMPT_STYLES)}")
        if feedback_style not in FEEDBACK_STYLES:
            problems.append(f"feedback_style={feedback_style!r}: use one of {', '.join(FEEDBACK_STYLES)}")
        if not isinstance(reveal_gold, bool):
            problems.append(f"reveal_gold={reveal_gold!r}: use True or False")
        if data_dir is not None and data_path is not None and Path(data_dir) != Path(data_path):
            problems.append(
                f"data_dir={str(data_dir)!r} and data_path={str(data_path)!r} disagree: pass only one"
            )
        named = self._check_files(files, problems)
        if problems:
            raise ConfigError(f"invalid arguments for {self.env_id}:\n  - " + "\n  - ".join(problems))
        self.prompt_style = prompt_style
        self.feedback_style = feedback_style
        self.reveal_gold = reveal_gold
        location = data_dir if data_dir is not None else data_path
        self.location_source = "data_dir" if location is not None else None
        if location is None and os.environ.get(DATA_ENV_VAR):
            location, self.location_source = os.environ[DATA_ENV_VAR], f"${DATA_ENV_VAR}"
        self.data_location: str | None = None if location is None else str(Path(location).expanduser())
        self.files: dict[str, str] = named
        available = [s for s in STANDARD_FILES if s == "test" or self._standard_path(s) is not None]
        self.splits = tuple(available) + tuple(name for name in named if name not in available)
        self._shas: dict[str, str] = {}
        self._stems: dict[str, tuple[str, str]] = {}

    # -- splits and files ---------------------------------------------------------------------
    def check_split(self, split: str) -> str:
        """Accept a listed split, a standard split (if its file exists) or ``"file:/path.jsonl"``.

        Raises:
            DataNotFoundError: the split's file is missing (the message says where to get it).
            ConfigError: an unknown split name.
        """
        if not isinstance(split, str):
            raise ConfigError(f"split must be a string, got {type(split).__name__}")
        self.split_path(split)
        if split not in self.splits:
            self.splits = (*self.splits, split)
        return split

    def split_path(self, split: str) -> Path:
        """The JSONL file behind ``split``; raises DataNotFoundError/ConfigError like :meth:`check_split`."""
        if split.startswith(_FILE_PREFIX):
            path = Path(split[len(_FILE_PREFIX):]).expanduser()
            if not path.is_file():
                raise DataNotFoundError(
                    f"split {split!r}: {path} is not a file; give the path of an ACE-format .jsonl"
                )
            return path
        if split in self.files:
            path = Path(self.files[split])
            if not path.is_file():
                raise DataNotFoundError(
                    f"files[{split!r}] = {str(path)!r} does not exist; give the path of an ACE-format .jsonl"
                )
            return path
        if split in STANDARD_FILES:
            path = self._standard_path(split)
            if path is None:
                raise DataNotFoundError(self._missing_message(split))
            return path
        missing = [s for s in STANDARD_FILES if s not in self.splits]
        choices = ", ".join([*self.splits, *missing, "file:/path.jsonl"])
        raise ConfigError(f"{self.env_id} has no split {split!r}; choose one of {choices}")

    def _standard_path(self, split: str) -> Path | None:
        if self.data_location is None:
            return None
        root = Path(self.data_location)
        if root.is_file():
            return root if split == "test" else None
        candidate = root / STANDARD_FILES[split]
        return candidate if candidate.is_file() else None

    def _missing_message(self, split: str) -> str:
        name = STANDARD_FILES[split]
        if self.data_location is None:
            where = (
                f"no data folder is configured. Set {DATA_ENV_VAR}=/path/to/folder or pass data_dir=... "
                f"(e.g. resd_envs.make('{self.env_id}', data_dir='/data/finer')); "
                f"the folder must hold {name}."
            )
        elif Path(self.data_location).is_file():
            where = (
                f"the data location {self.data_location} (from {self.location_source}) is a single "
                f"file, which serves only as 'test'; point it at a folder holding {name}."
            )
        elif not Path(self.data_location).is_dir():
            where = f"the data folder {self.data_location} (from {self.location_source}) does not exist."
        else:
            where = f"{name} is not in {self.data_location} (from {self.location_source})."
        return (
            f"{self.env_id} split {split!r} needs the FiNER file {name}, which is not shipped "
            f"(CC-BY-SA-4.0): {where} {_WHERE_TO_GET[split]}"
        )

    @staticmethod
    def _check_files(files: Mapping[str, Any] | None, problems: list[str]) -> dict[str, str]:
        if files is None:
            return {}
        if not isinstance(files, Mapping):
            problems.append(f"files={files!r}: use a mapping {{'split name': '/path/file.jsonl'}}")
            return {}
        named = {}
        for name, path in files.items():
            if not isinstance(name, str) or not _SPLIT_NAME_RE.match(name):
                problems.append(f"files: split name {name!r} must be letters, digits, '_', '-' or '.'")
            elif not isinstance(path, (str, os.PathLike)):
                problems.append(f"files[{name!r}]: expected a path string, got {type(path).__name__}")
            else:
                named[name] = str(Path(path).expanduser())
        return named

    # -- TaskFamily ---------------------------------------------------------------------------
    def load_split(self, split: str) -> Sequence[Task]:
        """Rows of ``split``: ``task_id``, ``prompt``, ``context``, ``target``, ``gold``, ``questions``,
        ``num_questions``, ``ambiguous_questions``, ``source``, ``line`` (and ``labels`` when a
        record's option list is not the FiNER-139 set)."""
        path = self.split_path(split).resolve()
        stat = path.stat()
        stem = path.name.removesuffix(".jsonl")
        owner = self._stems.get(stem)
        if owner is not None and owner != (str(path), split):
            raise ConfigError(
                f"split {split!r} ({path}) and split {owner[1]!r} ({owner[0]}) would give the same task ids "
                f"(file name {stem!r}); use each file once and give different files different names"
            )
        self._stems[stem] = (str(path), split)
        rows, sha = _rows_of_file(str(path), stat.st_size, stat.st_mtime_ns, self.prompt_style)
        self._shas[split] = sha
        return [dict(row) for row in rows]

    def task_set_sha256(self, split: str) -> str:
        """sha256 of the split's canonical rows, computed once per file (see :func:`sha256_of_rows`)."""
        self.tasks(split)
        return self._shas[split]

    def evaluate(
        self, task: Task, response: str, *, detail: str = "full", max_chars: int = 4000
    ) -> Evaluation:
        """Score ``response`` on ``task`` (never raises for any response string).

        ``test_results``: one per question, passed when its tag matches; messages carry the
        predicted/gold tags and flags. ``extra``: ``per_test_case``, ``per_task``, ``answer``,
        ``extraction``, ``predicted``, ``gold``, ``num_answers``, ``invalid_tags``,
        ``ambiguous_questions``, ``flags`` (per question id).
        """
        check_detail(detail)
        labels = tuple(task["labels"]) if task.get("labels") else LABELS
        text = response if isinstance(response, str) else str(response)
        result = score(text, task["target"], labels)
        questions = tuple(
            Question(int(q["number"]), str(q["entity"]), str(q["sentence"]), int(q["occurrences"]))
            for q in task.get("questions") or ()
        )
        items = verdicts(result, questions, labels)
        target = str(task["target"])
        privileged = render(
            result, items, style=self.feedback_style, detail="full", reveal_gold=self.reveal_gold, target=target
        )
        if detail == PRIVILEGED:
            feedback = privileged
        else:  # the policy never sees a gold tag, whatever reveal_gold says
            feedback = render(result, items, style=self.feedback_style, detail=detail, reveal_gold=False, target=target)
        extra = {
            "per_test_case": result.per_test_case,
            "per_task": result.per_task,
            "answer": result.answer,
            "extraction": result.extraction.method,
            "predicted": list(result.predicted),
            "gold": list(result.gold),
            "num_answers": result.num_answers,
            "invalid_tags": [v.predicted for v in items if not v.missing and not v.valid],
            "ambiguous_questions": [v.number for v in items if "ambiguous" in v.flags],
            "flags": {f"q{v.number}": v.flags for v in items if v.flags},
        }
        return Evaluation(
            test_results=question_results(items, reveal_gold=False),
            error_type=error_type(result),
            feedback=cap_text(feedback, max_chars),
            extra=extra,
            privileged_feedback=cap_text(privileged, max_chars),
        )

    def reference_response(self, task: Task) -> str:
        """The gold target written as a model answer in this family's prompt style."""
        return reference_answer(str(task["target"]), self.prompt_style)

    def describe(self) -> dict[str, Any]:
        files = {}
        for split in dict.fromkeys([*self.splits, *STANDARD_FILES]):
            try:
                files[split] = str(self.split_path(split))
            except (DataNotFoundError, ConfigError):
                files[split] = "missing"
        return {
            "data": self.data_location,
            "data_from": self.location_source,
            "files": files,
            "prompt_style": self.prompt_style,
            "feedback_style": self.feedback_style,
            "reveal_gold": self.reveal_gold,
            "labels": len(LABELS),
        }


@functools.lru_cache(maxsize=32)
def _rows_of_file(
    path: str, size: int, mtime_ns: int, prompt_style: str
) -> tuple[tuple[dict[str, Any], ...], str]:
    """Task rows of one record file and their sha256 (cached: many env instances share them)."""
    del size, mtime_ns  # part of the cache key only
    records = read_records(path)
    name = Path(path).name
    stem = name.removesuffix(".jsonl")
    rows = []
    for rec in records:
        row: dict[str, Any] = {
            "task_id": f"{stem}-{rec.index:04d}-{rec.digest}",
            "prompt": build_prompt(rec.context, len(rec.gold), prompt_style),
            "context": rec.context,
            "target": rec.target,
            "gold": list(rec.gold),
            "num_questions": len(rec.gold),
            "questions": [q.as_dict() for q in rec.questions],
            "ambiguous_questions": [q.number for q in rec.questions if q.ambiguous],
            "source": name,
            "line": rec.line,
        }
        if rec.options and frozenset(rec.options) != LABEL_SET:
            row["labels"] = list(rec.options)
        rows.append(row)
    frozen = tuple(rows)
    return frozen, sha256_of_rows(frozen)

"""The ACE record format of FiNER data: reading, validating and taking apart JSONL records.

A record file is JSON Lines; each non-blank line is an object with two non-empty strings:

* ``context``: the whole prompt (role line, the candidate tag list, the instruction, N numbered
  questions "What is best tag for entity "<token>" in sentence: "<sentence>?"", a closing cue);
* ``target``: the N gold tag names joined by commas, in question order.

Other keys are allowed and ignored. Reading never guesses: a malformed line raises
:class:`RecordFormatError` naming the file, the line number and the fix.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from resd_envs.errors import ConfigError, DataNotFoundError

#: One numbered question line of the FinLoRA/ACE template (the entity is one whitespace token).
_QUESTION_RE = re.compile(
    r'^(\d+)\. What is best tag for entity "(.*?)" in sentence: "(.*)\?"[ \t]*$', re.MULTILINE
)
#: The candidate-tag block: after "options: " up to the ". Answer the following" instruction.
_OPTIONS_RE = re.compile(r"tags options: (.*?)\. Answer the following", re.DOTALL)


class RecordFormatError(ConfigError):
    """A FiNER record file has a line that is not a valid ACE record (the message names the line)."""


@dataclass(frozen=True)
class Question:
    """One entity question of a record.

    Attributes:
        number: 1-based position in the record (also the position of its gold tag).
        entity: the token the question asks about, e.g. ``"34.6"``.
        sentence: the sentence it sits in (tokens joined by single spaces, no trailing ``?``).
        occurrences: how many whitespace tokens of ``sentence`` equal ``entity``; more than one
            means the question is ambiguous (the files carry no token index).
    """

    number: int
    entity: str
    sentence: str
    occurrences: int

    @property
    def ambiguous(self) -> bool:
        return self.occurrences > 1

    def as_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "entity": self.entity,
            "sentence": self.sentence,
            "occurrences": self.occurrences,
            "ambiguous": self.ambiguous,
        }


@dataclass(frozen=True)
class FinerRecord:
    """One validated ACE record.

    Attributes:
        context: the prompt text, verbatim.
        target: the gold string, verbatim (comma-joined tags).
        gold: ``target`` split on commas and stripped (one tag per question).
        questions: the parsed questions; empty when the context does not follow the
            FinLoRA template (scoring still works, feedback then names positions only).
        options: the candidate tags listed in the context (empty entries dropped), or empty when
            the context has no recognisable option block.
        index: 0-based position of the record among the file's records (blank lines skipped).
        line: 1-based line number in the file.
    """

    context: str
    target: str
    gold: tuple[str, ...]
    questions: tuple[Question, ...]
    options: tuple[str, ...]
    index: int
    line: int

    @property
    def digest(self) -> str:
        """First 8 hex digits of sha256(context + NUL + target): identifies the record's content."""
        blob = self.context.encode("utf-8") + b"\0" + self.target.encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:8]


def split_tags(text: str) -> tuple[str, ...]:
    """Split a comma-joined tag string and strip each piece (case kept): ``"A, B"`` -> ``("A", "B")``."""
    return tuple(piece.strip() for piece in text.split(","))


def parse_questions(context: str) -> tuple[Question, ...]:
    """The numbered entity questions of a FinLoRA-style context, in order (empty if none match)."""
    out = []
    for match in _QUESTION_RE.finditer(context):
        number, entity, sentence = int(match.group(1)), match.group(2), match.group(3)
        out.append(Question(number, entity, sentence, sentence.split().count(entity)))
    return tuple(out)


def parse_options(context: str) -> tuple[str, ...]:
    """The candidate tag names listed in a FinLoRA-style context (empty entries dropped)."""
    match = _OPTIONS_RE.search(context)
    if match is None:
        return ()
    return tuple(piece.strip() for piece in match.group(1).split(",") if piece.strip())


def option_block(context: str) -> str | None:
    """The raw candidate-tag text of a FinLoRA-style context (between "options: " and ". Answer")."""
    match = _OPTIONS_RE.search(context)
    return None if match is None else match.group(1)


def parse_record(obj: object, *, where: str, index: int, line: int) -> FinerRecord:
    """Validate one decoded JSON value as an ACE record.

    Args:
        obj: the decoded JSON value of the line.
        where: ``"path:line"`` for error messages.
        index: 0-based record index; ``line``: 1-based line number.

    Raises:
        RecordFormatError: the value is not an object with non-empty string ``context`` and
            ``target``, the target has an empty tag, or the number of numbered questions in the
            context differs from the number of target tags.
    """
    if not isinstance(obj, dict):
        raise RecordFormatError(
            f"{where}: expected a JSON object with 'context' and 'target' strings, got {type(obj).__name__}"
        )
    problems = []
    for key in ("context", "target"):
        value = obj.get(key)
        if not isinstance(value, str) or not value.strip():
            got = "missing" if key not in obj else f"{type(value).__name__} {str(value)[:40]!r}"
            problems.append(f"'{key}' must be a non-empty string ({got})")
    if problems:
        raise RecordFormatError(f"{where}: " + "; ".join(problems) + ". Each line must be an ACE record.")
    context, target = obj["context"], obj["target"]
    gold = split_tags(target)
    empty = [i + 1 for i, tag in enumerate(gold) if not tag]
    if empty:
        raise RecordFormatError(
            f"{where}: target {target[:120]!r} has an empty tag at position(s) {empty}; "
            "write the gold tags joined by single commas"
        )
    questions = parse_questions(context)
    if questions:
        numbers = [q.number for q in questions]
        if numbers != list(range(1, len(questions) + 1)):
            raise RecordFormatError(
                f"{where}: question numbers are {numbers}, expected 1..{len(questions)} in order"
            )
        if len(questions) != len(gold):
            raise RecordFormatError(
                f"{where}: the context asks {len(questions)} numbered questions but the target has "
                f"{len(gold)} tags; the target needs one tag per question"
            )
    return FinerRecord(context, target, gold, questions, parse_options(context), index, line)


def read_records(path: str | os.PathLike[str]) -> tuple[FinerRecord, ...]:
    """Read and validate every record of a JSONL file (cached on path, size and mtime).

    Raises:
        DataNotFoundError: ``path`` does not exist or is not a file.
        RecordFormatError: a line is not valid JSON or not a valid record, or the file has no
            records (the message names the line).
    """
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except OSError as exc:
        raise DataNotFoundError(
            f"FiNER record file {file} does not exist or cannot be read ({exc.strerror})"
        ) from exc
    if not file.is_file():
        raise DataNotFoundError(f"FiNER record path {file} is not a file; give a .jsonl file of ACE records")
    return _read_cached(str(file.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _read_cached(path: str, size: int, mtime_ns: int) -> tuple[FinerRecord, ...]:
    del size, mtime_ns  # cache key only: a changed file is read again
    records: list[FinerRecord] = []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise RecordFormatError(
                    f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    "each line must be one JSON object"
                ) from exc
            records.append(parse_record(obj, where=where, index=len(records), line=number))
    if not records:
        raise RecordFormatError(f"{path}: the file holds no records; expected one JSON object per line")
    return tuple(records)


def write_records(records: list[dict[str, str]], path: str | os.PathLike[str]) -> Path:
    """Write ``{"context", "target"}`` dicts as JSONL, ASCII with ``\\u`` escapes like ACE's files.

    Returns the path written.
    """
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({"context": record["context"], "target": record["target"]}))
            handle.write("\n")
    return file

"""ACE record files: validation with line-numbered errors, and the two shared files' shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resd_envs.errors import DataNotFoundError, ResdEnvError
from resd_envs.finer import LABELS, RecordFormatError, read_records
from resd_envs.finer.records import option_block, parse_questions, split_tags

VAL = "finer_val_batched_500_samples.jsonl"
SUBSET = "finer_test_subset_006_seed42.jsonl"
QUESTION = 'What is best tag for entity "{e}" in sentence: "{s}?"'


def _context(pairs: list[tuple[str, str]]) -> str:
    lines = "\n".join(f"{i + 1}. " + QUESTION.format(e=e, s=s) for i, (e, s) in enumerate(pairs))
    head = "You are XBRL expert.  Here is a list of US GAAP tags options: ,A,B. Answer the following x.\n"
    return head + lines


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("name,count", [(VAL, 500), (SUBSET, 441)])
def test_shared_files_load(data_dir: Path, name: str, count: int) -> None:
    records = read_records(data_dir / "finer" / name)
    assert len(records) == count
    assert all(len(r.gold) == 4 and len(r.questions) == 4 for r in records)
    assert all(set(r.options) == set(LABELS) and len(r.options) == 139 for r in records)
    assert all(set(r.gold) <= set(LABELS) for r in records)
    assert [r.index for r in records] == list(range(count))


def test_shared_val_first_record(data_dir: Path) -> None:
    first = read_records(data_dir / "finer" / VAL)[0]
    assert first.questions[0].entity == "34.6"
    assert first.gold[3] == "PaymentsToAcquireBusinessesGross"
    assert first.questions[2].sentence == first.questions[3].sentence
    assert option_block(first.context).startswith(",")


def test_questions_count_entity_occurrences() -> None:
    questions = parse_questions(_context([("4", "due May 4 , 2021 , and 4 more"), ("x", "x y")]))
    assert [q.occurrences for q in questions] == [2, 1]
    assert questions[0].ambiguous and not questions[1].ambiguous


def test_split_tags() -> None:
    assert split_tags(" A , B,C ") == ("A", "B", "C")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"context": "c"}', "'target' must be a non-empty string \\(missing\\)"),
        ('{"context": 3, "target": "A"}', "'context' must be a non-empty string"),
        ('{"context": "c", "target": "A,,B"}', "empty tag at position"),
        (
            json.dumps({"context": _context([("1", "a 1"), ("2", "b 2")]), "target": "A"}),
            "asks 2 numbered questions",
        ),
    ],
)
def test_bad_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    good = json.dumps({"context": _context([("1", "a 1")]), "target": "A"})
    path = _write(tmp_path, [good, "", line])
    with pytest.raises(RecordFormatError, match=message) as info:
        read_records(path)
    assert f"{path.resolve()}:3:" in str(info.value)
    assert isinstance(info.value, ResdEnvError)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(RecordFormatError, match="no records"):
        read_records(_write(tmp_path, [""]))
    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_records(tmp_path / "nope.jsonl")
    with pytest.raises(DataNotFoundError, match="not a file"):
        read_records(tmp_path)


def test_records_without_template_questions_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps({"context": "Tag these: ...", "target": "A,B", "extra": 1})])
    [record] = read_records(path)
    assert record.gold == ("A", "B") and record.questions == () and record.options == ()


def test_changed_file_is_read_again(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps({"context": "c", "target": "A"})])
    assert read_records(path)[0].gold == ("A",)
    path.write_text(json.dumps({"context": "c", "target": "B,C"}) + "\n" * 3, encoding="utf-8")
    assert read_records(path)[0].gold == ("B", "C")

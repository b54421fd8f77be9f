"""The FiNER-139 -> ACE record builder, on a small synthetic sentence file written by the test."""

from __future__ import annotations

import json
import random
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from resd_envs.errors import ConfigError, DataNotFoundError, MissingDependencyError
from resd_envs.finer import LABELS, read_records
from resd_envs.finer.builder import (
    BuildConfig,
    HfSentences,
    LocalSentences,
    build_file,
    build_records,
    entity_items,
    main,
)
from resd_envs.finer.family import STANDARD_FILES, FinerFamily
from resd_envs.finer.labels import IOB_TAGS


def _synthetic_sentences(n: int, seed: int = 0) -> list[dict[str, list]]:
    """n fake sentences; each has 1-4 tagged tokens, tags given as ids or IOB2 names alternately."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tokens = [f"w{i}_{j}" for j in range(12)]
        tags: list[int | str] = [0] * 12
        for k, pos in enumerate(sorted(rng.sample(range(12), rng.randint(1, 4)))):
            tokens[pos] = f"{i}.{k}"
            tag_id = rng.randrange(1, len(IOB_TAGS))
            tags[pos] = tag_id if i % 2 else IOB_TAGS[tag_id]
        out.append({"tokens": tokens, "ner_tags": [t if t != 0 or i % 2 else "O" for t in tags]})
    return out


@pytest.fixture()
def sentence_file(tmp_path: Path) -> Path:
    path = tmp_path / "finer139_train.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in _synthetic_sentences(60)), encoding="utf-8")
    return path


def test_entity_items_take_the_first_three_tagged_tokens() -> None:
    tokens = ["a", "1", "b", "2", "3", "4"]
    tags = ["O", "B-Revenues", "O", "I-Revenues", "B-Goodwill", "B-SharePrice"]
    items = entity_items(tokens, tags)
    assert [(i.entity, i.tag) for i in items] == [("1", "Revenues"), ("2", "Revenues"), ("3", "Goodwill")]
    assert items[0].sentence == "a 1 b 2 3 4"


def test_local_build_gives_valid_ace_records(sentence_file: Path, tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "data" / STANDARD_FILES["train"]
    config = BuildConfig(seed=7, num_records=20, pool_size=30)
    report = build_file(LocalSentences(sentence_file), out, config, source_name=str(sentence_file))
    records = read_records(out)
    assert len(records) == 20 == report.records_written and report.records_pooled == 30
    assert all(len(r.gold) == 4 and len(r.questions) == 4 for r in records)
    assert all(set(r.options) == set(LABELS) for r in records)
    # same template as the shared files: identical text outside the option list and the questions
    shared = read_records(data_dir / "finer" / STANDARD_FILES["test"])[0].context
    ours = records[0].context
    assert ours.split("options: ")[0] == shared.split("options: ")[0]
    assert ours.split("Provide nothing else. \n")[0].split(". Answer")[1] == shared.split(
        "Provide nothing else. \n")[0].split(". Answer")[1]
    assert ours.endswith("\nOutput US GAAP tags:")
    meta = json.loads(Path(str(out) + ".provenance.json").read_text(encoding="utf-8"))
    assert meta["config"]["seed"] == 7 and meta["records_written"] == 20 and "CC-BY-SA" in meta["license"]
    # the env picks the file up as the train split
    fam = FinerFamily(data_dir=out.parent)
    assert "train" in fam.splits and len(fam.tasks("train")) == 20
    assert all(fam.evaluate(row, fam.reference_response(row)).passed for row in fam.tasks("train"))


def test_build_is_seeded(sentence_file: Path) -> None:
    source = LocalSentences(sentence_file)
    config = BuildConfig(seed=3, num_records=10, pool_size=25)
    first = build_records(source, config)
    assert first == build_records(source, config)
    assert first != build_records(source, BuildConfig(seed=4, num_records=10, pool_size=25))


def test_leftovers_carry_over_and_partial_record_is_optional(sentence_file: Path) -> None:
    source = LocalSentences(sentence_file)
    items = sum(len(entity_items(*source[i])) for i in range(len(source)))
    full = build_records(source, BuildConfig(num_records=None, pool_size=10_000))
    assert len(full) == items // 4
    kept = build_records(source, BuildConfig(num_records=None, pool_size=10_000, keep_partial=True))
    assert len(kept) == -(-items // 4)
    tails = [len(r["target"].split(",")) for r in kept]
    assert min(tails) == (items % 4 or 4)


def test_exclusion_and_label_order(sentence_file: Path, tmp_path: Path, data_dir: Path) -> None:
    source = LocalSentences(sentence_file)
    first_out = tmp_path / "first.jsonl"
    build_file(source, first_out, BuildConfig(num_records=5, pool_size=5), source_name="synthetic")
    used = {q.sentence for r in read_records(first_out) for q in r.questions}
    val = data_dir / "finer" / STANDARD_FILES["test"]
    out = tmp_path / "second.jsonl"
    report = build_file(
        source, out, BuildConfig(num_records=5, pool_size=8), source_name="synthetic",
        exclude=[first_out], label_order_from=val,
    )
    assert report.sentences_excluded == len(used)
    again = read_records(out)
    assert not used & {q.sentence for r in again for q in r.questions}
    assert again[0].options == read_records(val)[0].options


def test_bad_inputs_are_clear_errors(tmp_path: Path, sentence_file: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        LocalSentences(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": ["a"], "ner_tags": [999]}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1: tag id 999"):
        build_records(LocalSentences(bad), BuildConfig(num_records=None))
    with pytest.raises(ConfigError, match="num_records=0"):
        BuildConfig(num_records=0).check()
    with pytest.raises(ConfigError, match="only .* records could be built"):
        build_file(LocalSentences(sentence_file), tmp_path / "x.jsonl", BuildConfig(num_records=500),
                   source_name="synthetic")


def test_cli(sentence_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    code = main(["--source", str(sentence_file), "--out", str(out), "--num-records", "6", "--pool-size", "9"])
    assert code == 0 and "wrote 6 records" in capsys.readouterr().out
    assert len(read_records(out)) == 6
    assert main(["--source", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2


def test_hf_source_needs_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingDependencyError, match="pip install datasets"):
        HfSentences("train")


def test_hf_source_uses_the_dataset_tag_names(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeDataset(list):
        features: ClassVar[dict[str, object]] = {
            "ner_tags": types.SimpleNamespace(feature=types.SimpleNamespace(names=list(IOB_TAGS)))
        }

    rows = FakeDataset({"tokens": s["tokens"], "ner_tags": [IOB_TAGS.index(t) if isinstance(t, str) else t
                                                            for t in s["ner_tags"]]}
                       for s in _synthetic_sentences(20, seed=1))
    calls = []
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda name, split: calls.append((name, split)) or rows  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    source = HfSentences("train")
    assert calls == [("nlpaueb/finer-139", "train")] and len(source) == 20
    _, tags = source[0]
    assert tags[0] in IOB_TAGS
    assert build_records(source, BuildConfig(num_records=3, pool_size=5))

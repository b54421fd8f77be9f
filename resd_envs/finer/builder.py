"""Build ACE-format FiNER records from FiNER-139 sentences (e.g. the missing 1000-record train file).

Procedure (FinLoRA's batching as used for ACE's files, made seeded and documented):

1. Take one FiNER-139 split (``train`` for a train file) and shuffle its sentences with ``seed``.
2. Skip sentences that appear in any ``exclude`` record file (e.g. the shipped val and test files),
   so the new records share no sentence with them.
3. For each sentence, join its tokens with single spaces and take its first
   ``max_entities_per_sentence`` (3) tagged tokens, B- and I- alike, with their tag names
   (prefix dropped).
4. Queue these (token, sentence, tag) items; every time the queue holds ``batch_size`` (4) items,
   the first 4 become one record. Leftovers carry over to the next sentence. Stop once
   ``pool_size`` records exist; a final partial record is kept only with ``keep_partial=True``.
5. Shuffle the records with ``seed`` and keep the first ``num_records``.

Every record uses one option order: the raw option block of the first record of
``label_order_from`` (pass the val file to get prompts identical in form to it), else the empty
entry followed by :data:`~resd_envs.finer.labels.LABELS`. The result differs from ACE's lost file
(which depended on FinLoRA's unseeded run state and ACE's unknown subsampling) but has the same form.

Sources: ``datasets.load_dataset("nlpaueb/finer-139")`` when the ``datasets`` library is installed
(imported only then), or a local JSONL with one sentence per line: ``{"tokens": [...],
"ner_tags": [...]}``, tags as FiNER-139 integer ids or as IOB2 names (``"O"``, ``"B-Revenues"``).

Command line::

    python -m resd_envs.finer.builder --source hf --out DATA/finer_train_batched_1000_samples.jsonl \\
        --exclude DATA/finer_val_batched_500_samples.jsonl DATA/finer_test_subset_006_seed42.jsonl \\
        --label-order-from DATA/finer_val_batched_500_samples.jsonl

The output is derived from FiNER-139 and so is CC-BY-SA-4.0; a ``<out>.provenance.json`` file next
to it records the source, the configuration and the counts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from resd_envs.errors import ConfigError, DataNotFoundError, MissingDependencyError, ResdEnvError
from resd_envs.finer.labels import IOB_TAGS, LABELS, strip_iob
from resd_envs.finer.records import option_block, read_records, write_records

HF_DATASET = "nlpaueb/finer-139"
#: Record template pieces (the FinLoRA format of ACE's files, typos and double spaces included).
_HEAD = "You are XBRL expert.  Here is a list of US GAAP tags options: "
_INSTRUCTION = (
    ". Answer the following {n} independent questions by providing only  {n} US GAAP tags answers in the "
    "order of the questions. Each answer must be saperated by a comma (,).  Provide nothing else. \n"
)
_QUESTION = 'What is best tag for entity "{entity}" in sentence: "{sentence}?"'
_CUE = "\nOutput US GAAP tags:"


@dataclass(frozen=True)
class BuildConfig:
    """Settings of one build (all recorded in the provenance file).

    Attributes:
        seed: seeds both shuffles (sentences, then records).
        num_records: records kept at the end (None = all).
        pool_size: records batched before sampling (FinLoRA used 10,000).
        batch_size: questions per record (4 in every ACE file).
        max_entities_per_sentence: tagged tokens taken from one sentence (3 in FinLoRA).
        keep_partial: keep a final record with fewer than ``batch_size`` questions.
    """

    seed: int = 42
    num_records: int | None = 1000
    pool_size: int = 10_000
    batch_size: int = 4
    max_entities_per_sentence: int = 3
    keep_partial: bool = False

    def check(self) -> None:
        """Raise ConfigError listing every invalid field."""
        problems = []
        if not isinstance(self.seed, int):
            problems.append(f"seed={self.seed!r}: use an integer")
        if self.num_records is not None and (not isinstance(self.num_records, int) or self.num_records < 1):
            problems.append(f"num_records={self.num_records!r}: use an integer >= 1 or None")
        for name in ("pool_size", "batch_size", "max_entities_per_sentence"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name}={value!r}: use an integer >= 1")
        if problems:
            raise ConfigError("invalid FiNER build settings:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class EntityItem:
    """One question to be: a tagged token, its sentence and its gold tag (no B-/I- prefix)."""

    entity: str
    sentence: str
    tag: str


@dataclass
class BuildReport:
    """Counts of one build, written next to the output as provenance."""

    source: str
    config: dict[str, Any]
    sentences_total: int = 0
    sentences_read: int = 0
    sentences_excluded: int = 0
    records_pooled: int = 0
    records_written: int = 0
    partial_dropped: int = 0
    label_order_from: str | None = None
    excluded_files: list[str] = field(default_factory=list)


class SentenceSource(Protocol):
    """Random-access FiNER sentences: ``len(src)`` and ``src[i] -> (tokens, iob_tag_names)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[list[str], list[str]]: ...


# -- sources ------------------------------------------------------------------------------------
class LocalSentences:
    """A local JSONL of FiNER-139 sentences (lines are decoded lazily, on access).

    Each line: ``{"tokens": [str, ...], "ner_tags": [int | str, ...]}`` with equal lengths; integer
    tags are FiNER-139 ids (:data:`~resd_envs.finer.labels.IOB_TAGS`), strings are IOB2 names.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DataNotFoundError(
                f"FiNER-139 sentence file {self.path} does not exist; give a JSONL with 'tokens' and "
                f"'ner_tags' per line, or use --source hf (needs `pip install datasets`)"
            )
        self._lines: list[tuple[int, str]] = []
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    self._lines.append((number, line))
        if not self._lines:
            raise ConfigError(f"{self.path}: the file holds no sentences")

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: int) -> tuple[list[str], list[str]]:
        number, line = self._lines[index]
        return decode_sentence(line, where=f"{self.path}:{number}")


class HfSentences:
    """One split of FiNER-139 from the Hugging Face hub via the ``datasets`` library (lazy import)."""

    def __init__(self, split: str = "train", name: str = HF_DATASET) -> None:
        try:
            import datasets
        except ImportError as exc:
            raise MissingDependencyError(
                "building Finer records from the hub needs the `datasets` library: `pip install datasets` "
                "(or pass a local JSONL of FiNER-139 sentences with --source PATH)"
            ) from exc
        self.name, self.split = name, split
        self._data = datasets.load_dataset(name, split=split)
        feature = self._data.features["ner_tags"]
        names = getattr(getattr(feature, "feature", None), "names", None)
        self._names = list(names) if names else list(IOB_TAGS)

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> tuple[list[str], list[str]]:
        row = self._data[int(index)]
        return list(row["tokens"]), [self._names[int(tag)] for tag in row["ner_tags"]]


def decode_sentence(line: str, *, where: str) -> tuple[list[str], list[str]]:
    """Parse one local sentence line into (tokens, IOB2 tag names); errors name ``where``."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where}: not valid JSON ({exc.msg}); expected {{'tokens': [...], 'ner_tags': [...]}}"
        ) from exc
    tokens, tags = (obj.get("tokens"), obj.get("ner_tags")) if isinstance(obj, dict) else (None, None)
    if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
        raise ConfigError(f"{where}: needs 'tokens' and 'ner_tags' lists of equal length")
    names = []
    for tag in tags:
        if isinstance(tag, bool) or not isinstance(tag, (int, str)):
            raise ConfigError(f"{where}: tag {tag!r} is neither a FiNER-139 id nor an IOB2 name")
        if isinstance(tag, int):
            if not 0 <= tag < len(IOB_TAGS):
                raise ConfigError(f"{where}: tag id {tag} is outside FiNER-139's 0..{len(IOB_TAGS) - 1}")
            names.append(IOB_TAGS[tag])
        else:
            names.append(tag)
    return [str(token) for token in tokens], names


# -- the procedure ------------------------------------------------------------------------------
def entity_items(tokens: Sequence[str], tags: Sequence[str], limit: int = 3) -> list[EntityItem]:
    """The first ``limit`` tagged tokens of a sentence as questions (B- and I- tokens alike)."""
    sentence = " ".join(tokens)
    out = []
    for token, tag in zip(tokens, tags):
        name = strip_iob(tag)
        if name:
            out.append(EntityItem(token, sentence, name))
            if len(out) == limit:
                break
    return out


def make_record(items: Sequence[EntityItem], options: str) -> dict[str, str]:
    """One ACE record (``context``, ``target``) asking about ``items`` with the raw option block."""
    n = len(items)
    questions = "\n".join(
        f"{i + 1}. " + _QUESTION.format(entity=item.entity, sentence=item.sentence)
        for i, item in enumerate(items)
    )
    context = _HEAD + options + _INSTRUCTION.format(n=n) + questions + _CUE
    return {"context": context, "target": ",".join(item.tag for item in items)}


def default_options() -> str:
    """The option block used without ``label_order_from``: an empty entry, then the 139 labels."""
    return "," + ",".join(LABELS)


def sentences_in(paths: Iterable[str | Path]) -> set[str]:
    """Every question sentence of the given ACE record files (for exclusion)."""
    found: set[str] = set()
    for path in paths:
        for record in read_records(path):
            found.update(q.sentence for q in record.questions)
    return found


def build_records(
    source: SentenceSource,
    config: BuildConfig = BuildConfig(),
    *,
    options: str | None = None,
    exclude_sentences: set[str] | None = None,
    report: BuildReport | None = None,
) -> list[dict[str, str]]:
    """Run steps 1-5 of the module procedure on ``source``; deterministic for a given ``config.seed``."""
    config.check()
    block = default_options() if options is None else options
    excluded = exclude_sentences or set()
    rng = random.Random(config.seed)
    order = list(range(len(source)))
    rng.shuffle(order)
    pooled: list[dict[str, str]] = []
    queue: list[EntityItem] = []
    for count, index in enumerate(_until_full(order, pooled, config.pool_size), start=1):
        tokens, tags = source[index]
        if report is not None:
            report.sentences_read = count
        if " ".join(tokens) in excluded:
            if report is not None:
                report.sentences_excluded += 1
            continue
        queue.extend(entity_items(tokens, tags, config.max_entities_per_sentence))
        while len(queue) >= config.batch_size:
            pooled.append(make_record(queue[: config.batch_size], block))
            queue = queue[config.batch_size:]
    if queue:
        if config.keep_partial:
            pooled.append(make_record(queue, block))
        elif report is not None:
            report.partial_dropped = len(queue)
    random.Random(config.seed).shuffle(pooled)
    kept = pooled if config.num_records is None else pooled[: config.num_records]
    if report is not None:
        report.sentences_total = len(source)
        report.records_pooled = len(pooled)
        report.records_written = len(kept)
    return kept


def _until_full(order: list[int], pooled: list[dict[str, str]], pool_size: int) -> Iterator[int]:
    for index in order:
        if len(pooled) >= pool_size:
            return
        yield index


def build_file(
    source: SentenceSource,
    out: str | Path,
    config: BuildConfig = BuildConfig(),
    *,
    source_name: str,
    exclude: Sequence[str | Path] = (),
    label_order_from: str | Path | None = None,
) -> BuildReport:
    """Build records, write them to ``out`` (JSONL) and ``out`` + ``.provenance.json``; returns the counts.

    Raises:
        ConfigError: invalid settings, or fewer records than ``config.num_records`` could be made.
    """
    options = None
    if label_order_from is not None:
        options = option_block(read_records(label_order_from)[0].context)
        if options is None:
            raise ConfigError(f"{label_order_from}: its first record has no recognisable tag option list")
    report = BuildReport(
        source=source_name, config=asdict(config),
        label_order_from=None if label_order_from is None else str(label_order_from),
        excluded_files=[str(p) for p in exclude],
    )
    excluded = sentences_in(exclude)
    records = build_records(source, config, options=options, exclude_sentences=excluded, report=report)
    if config.num_records is not None and len(records) < config.num_records:
        raise ConfigError(
            f"only {len(records)} records could be built from {source_name} ({report.sentences_read} "
            f"sentences, {report.sentences_excluded} excluded) but num_records={config.num_records}; "
            "use more sentences"
        )
    path = write_records(records, out)
    meta = {**asdict(report), "license": "CC-BY-SA-4.0 (derived from FiNER-139, Loukas et al. 2022)"}
    Path(str(path) + ".provenance.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return report


# -- command line -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resd_envs.finer.builder",
        description="Build ACE-format FiNER records (4 questions each) from FiNER-139 sentences.",
    )
    parser.add_argument(
        "--source", default="hf", help="'hf' (needs the datasets library) or a local sentence JSONL"
    )
    parser.add_argument("--split", default="train", help="FiNER-139 split for --source hf (default train)")
    parser.add_argument("--hf-name", default=HF_DATASET, help="dataset name on the hub (or a parquet mirror)")
    parser.add_argument(
        "--out", required=True, help="output JSONL, e.g. DATA/finer_train_batched_1000_samples.jsonl"
    )
    parser.add_argument("--num-records", type=int, default=1000, help="records to keep (0 = all)")
    parser.add_argument("--pool-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--exclude", nargs="*", default=[], help="record files whose sentences must not be reused"
    )
    parser.add_argument("--label-order-from", help="record file whose option order every record copies")
    parser.add_argument("--keep-partial", action="store_true", help="keep a final record with < 4 questions")
    args = parser.parse_args(argv)
    config = BuildConfig(
        seed=args.seed, num_records=args.num_records or None, pool_size=args.pool_size,
        keep_partial=args.keep_partial,
    )
    try:
        if args.source == "hf":
            source: SentenceSource = HfSentences(args.split, args.hf_name)
            name = f"hf:{args.hf_name}:{args.split}"
        else:
            source, name = LocalSentences(args.source), str(args.source)
        report = build_file(
            source, args.out, config, source_name=name, exclude=args.exclude,
            label_order_from=args.label_order_from,
        )
    except ResdEnvError as exc:
        print(f"finer builder: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {report.records_written} records to {args.out} ({report.records_pooled} pooled from "
        f"{report.sentences_read} sentences, {report.sentences_excluded} excluded)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

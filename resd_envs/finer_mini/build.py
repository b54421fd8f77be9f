"""Derive FinerMini's single-question tasks from ACE's FiNER record files (deterministic).

FinerMini is a small-model variant of Finer, not the benchmark (see ``docs/finer_mini.md``). Its
shipped files ``data/finer_mini_train.jsonl`` and ``data/finer_mini_test.jsonl`` were written by
:func:`main` from the two ACE files that ship in ``tests/data/finer/``:

* ``train`` <- ``finer_test_subset_006_seed42.jsonl`` (ACE's 441-record test subset),
* ``test``  <- ``finer_val_batched_500_samples.jsonl`` (the 500 records Finer-v0 reports on).

The two files share no sentence, so FinerMini's train and test tasks share none either.

Procedure, per record in file order and per question in question order:

1. Skip the question when its entity token occurs more than once in its sentence (ambiguous: the
   ACE files carry no token index, so the question has no single answer).
2. Cut the sentence to a window of at most :data:`WINDOW_CHARS` characters around the first
   occurrence of the entity (whole words, ``...`` marks a cut), so prompts stay short.
3. Draw :data:`NUM_CANDIDATES` - 1 distractor tags uniformly without replacement from the other 138
   FiNER-139 labels, and shuffle them with the gold tag; the generator is seeded with
   ``sha256(seed, origin)``, so each question's candidates depend on nothing but the question.

Each output line: ``{"origin", "entity", "sentence", "candidates", "gold"}`` where ``origin`` is
``<ACE file stem>:<record index>:q<question number>``. Command line (rewrites the shipped files)::

    python -m resd_envs.finer_mini.build --ace-dir tests/data/finer --out-dir resd_envs/finer_mini/data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from resd_envs.errors import ResdEnvError
from resd_envs.finer.labels import LABELS
from resd_envs.finer.records import FinerRecord, read_records

#: Candidate tags per question (the gold tag and 3 distractors).
NUM_CANDIDATES = 4
#: Longest sentence window kept around the entity, in characters (ellipses not counted).
WINDOW_CHARS = 240
#: Seed of the distractor draws of the shipped files.
SEED = 0
#: Output split name -> ACE file it is derived from.
SOURCES: dict[str, str] = {
    "train": "finer_test_subset_006_seed42.jsonl",
    "test": "finer_val_batched_500_samples.jsonl",
}
#: File name of each split inside the data folder.
SPLIT_FILES: dict[str, str] = {"train": "finer_mini_train.jsonl", "test": "finer_mini_test.jsonl"}


def sentence_window(sentence: str, entity: str, max_chars: int = WINDOW_CHARS) -> str:
    """The whole words of ``sentence`` within ``max_chars`` around the first ``entity`` token.

    Words are taken alternately after and before the entity while they fit; a cut end gets ``...``.
    A sentence that already fits, or one without the entity as a token, is cut from its start.
    """
    words = sentence.split()
    if len(sentence) <= max_chars:
        return sentence
    try:
        centre = words.index(entity)
    except ValueError:
        centre = 0
    lo, hi = centre, centre + 1
    used = len(words[centre])
    grew = True
    while grew:
        grew = False
        if hi < len(words) and used + 1 + len(words[hi]) <= max_chars:
            used += 1 + len(words[hi])
            hi += 1
            grew = True
        if lo > 0 and used + 1 + len(words[lo - 1]) <= max_chars:
            used += 1 + len(words[lo - 1])
            lo -= 1
            grew = True
    text = " ".join(words[lo:hi])
    return ("... " if lo > 0 else "") + text + (" ..." if hi < len(words) else "")


def candidates_for(gold: str, origin: str, seed: int = SEED, k: int = NUM_CANDIDATES) -> list[str]:
    """``gold`` and ``k - 1`` distractor labels in a shuffled order, seeded by (``seed``, ``origin``)."""
    digest = hashlib.sha256(f"{seed}\0{origin}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    others = [label for label in LABELS if label != gold]
    picked = rng.sample(others, k - 1) + [gold]
    rng.shuffle(picked)
    return picked


def question_rows(records: Sequence[FinerRecord], stem: str, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """FinerMini rows of one ACE file's records (steps 1-3 of the module procedure)."""
    for record in records:
        for question, gold in zip(record.questions, record.gold):
            if question.ambiguous:
                continue
            origin = f"{stem}:{record.index}:q{question.number}"
            yield {
                "origin": origin,
                "entity": question.entity,
                "sentence": sentence_window(question.sentence, question.entity),
                "candidates": candidates_for(gold, origin, seed),
                "gold": gold,
            }


def build_split(ace_file: str | Path, seed: int = SEED) -> list[dict[str, Any]]:
    """All FinerMini rows derived from one ACE record file."""
    path = Path(ace_file)
    return list(question_rows(read_records(path), path.name.removesuffix(".jsonl"), seed))


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSONL (ASCII, keys in a fixed order); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resd_envs.finer_mini.build",
        description="Derive FinerMini's single-question tasks from ACE's FiNER record files.",
    )
    parser.add_argument("--ace-dir", required=True, help="folder holding the two ACE files (tests/data/finer)")
    parser.add_argument("--out-dir", required=True, help="where to write finer_mini_{train,test}.jsonl")
    parser.add_argument("--seed", type=int, default=SEED, help=f"distractor seed (shipped files: {SEED})")
    args = parser.parse_args(argv)
    try:
        for split, source in SOURCES.items():
            rows = build_split(Path(args.ace_dir) / source, args.seed)
            path = write_rows(rows, Path(args.out_dir) / SPLIT_FILES[split])
            print(f"{split}: wrote {len(rows)} tasks to {path} (from {source})")
    except ResdEnvError as exc:
        print(f"finer_mini build: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The shipped BouncingSim task sets: building them once, loading them with checksum checks.

Layout under ``asset_dir("physics") / "bouncingsim" / VERSION``: one gzip JSONL per (level, split)
named ``G_<level>_<split>.jsonl.gz`` plus ``manifest.json`` (row counts, sha256 of each file's
uncompressed JSONL, the pymunk version and the generator seed). A row:
``{"task_id", "family", "level", "split", "index", "n_balls", "scene", "timestamps",
"expected_positions"}`` with ``scene`` in the reference's JSON format and
``expected_positions[k][b] = [x, y]`` of ball ``b`` at ``timestamps[k]`` (oracle, rounded to 2 dp).

Regenerate (takes about a minute): ``python -m resd_envs.bouncingsim.tasks --write``;
check the shipped files: ``python -m resd_envs.bouncingsim.tasks --check``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

from resd_envs.assets import asset_dir
from resd_envs.bouncingsim.generator import FAMILIES, LEVELS, generate_scene
from resd_envs.bouncingsim.oracle import TEST_TIMES, simulate
from resd_envs.errors import AssetNotFoundError, ChecksumMismatchError

VERSION = "v0"
SEED = 0
FAMILY = "G"
#: Task-set sizes of RESD's BouncingSim-Easy/Medium.
TASK_SETS: dict[str, dict[str, int]] = {
    "easy": {"train": 640, "test": 100},
    "medium": {"train": 320, "test": 100},
}
PRESETS_FILE = "presets.json"


def data_dir() -> Path:
    """The versioned data folder of the shipped task sets."""
    return asset_dir("physics") / "bouncingsim" / VERSION


def file_name(level: str, split: str) -> str:
    return f"{FAMILY}_{level}_{split}.jsonl.gz"


def task_id(level: str, split: str, index: int, *, family: str = FAMILY, seed: int | None = None) -> str:
    """The one place BouncingSim task ids are written.

    Shipped tasks: ``bsim-G-easy-test-0007``; generated tasks (``seed`` given) also name the seed:
    ``bsim-C-easy-train-s3-0007``.
    """
    stem = f"bsim-{family}-{level}-{split}"
    return f"{stem}-{index:04d}" if seed is None else f"{stem}-s{seed}-{index:04d}"


def make_row(level: str, split: str, index: int, *, seed: int = SEED) -> dict[str, Any]:
    """Generate task ``index`` of a shipped set: the scene (stream = split) and its answers."""
    scene = generate_scene(FAMILY, level, index, stream=split, seed=seed)
    expected = simulate(scene, TEST_TIMES)
    return {
        "task_id": task_id(level, split, index),
        "family": FAMILY,
        "level": level,
        "split": split,
        "index": index,
        "n_balls": len(scene["balls"]),
        "scene": scene,
        "timestamps": list(TEST_TIMES),
        "expected_positions": expected.tolist(),
    }


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n" for r in rows
    )


def write_sets(out_dir: Path | None = None, *, log: Any = print) -> dict[str, Any]:
    """Generate every shipped set and write the files and the manifest; returns the manifest."""
    import pymunk

    out = out_dir or data_dir()
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    started = time.perf_counter()
    for level, sizes in TASK_SETS.items():
        for split, count in sizes.items():
            t0 = time.perf_counter()
            rows = [make_row(level, split, i) for i in range(count)]
            raw = _jsonl(rows)
            buf = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
                gz.write(raw)
            name = file_name(level, split)
            (out / name).write_bytes(buf.getvalue())
            files[name] = {
                "level": level,
                "split": split,
                "rows": count,
                "sha256": hashlib.sha256(raw).hexdigest(),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            log(f"{name}: {count} rows in {files[name]['seconds']} s")
    manifest = {
        "format": "resd-bouncingsim-tasks",
        "version": VERSION,
        "family": FAMILY,
        "seed": SEED,
        "timestamps": list(TEST_TIMES),
        "pymunk_version": pymunk.version,
        "tolerance": 50.0,
        "sha256_of": "the uncompressed JSONL bytes",
        "created_by": "python -m resd_envs.bouncingsim.tasks --write",
        "generation_seconds": round(time.perf_counter() - started, 1),
        "files": files,
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    presets = {
        f"{letter}_{level}": generate_scene(letter, level, 0, stream="preset")
        for letter in FAMILIES
        for level in LEVELS
    }
    (out / PRESETS_FILE).write_text(json.dumps(presets, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


@cache
def manifest() -> dict[str, Any]:
    """The shipped manifest (cached)."""
    path = data_dir() / "manifest.json"
    if not path.is_file():
        raise AssetNotFoundError(
            f"{path} is missing; rebuild it with `python -m resd_envs.bouncingsim.tasks --write`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _load(level: str, split: str) -> tuple[dict[str, Any], ...]:
    if level not in TASK_SETS or split not in TASK_SETS[level]:
        raise AssetNotFoundError(
            f"no shipped BouncingSim set for level {level!r}, split {split!r}; "
            f"shipped: {', '.join(f'{lv}/{sp}' for lv in TASK_SETS for sp in TASK_SETS[lv])}"
        )
    name = file_name(level, split)
    path = data_dir() / name
    if not path.is_file():
        raise AssetNotFoundError(
            f"{path} is missing; rebuild it with `python -m resd_envs.bouncingsim.tasks --write`"
        )
    raw = gzip.decompress(path.read_bytes())
    entry = manifest()["files"].get(name)
    digest = hashlib.sha256(raw).hexdigest()
    if entry is None or entry["sha256"] != digest:
        raise ChecksumMismatchError(
            f"{path} hashes to {digest}, but manifest.json says "
            f"{entry['sha256'] if entry else 'nothing'}; reinstall the package or rebuild the data"
        )
    return tuple(json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip())


def load_rows(level: str, split: str) -> tuple[dict[str, Any], ...]:
    """The shipped rows of ``level``/``split`` (checked against the manifest; cached per process)."""
    return _load(level, split)


@cache
def presets() -> dict[str, dict[str, Any]]:
    """One example scene per family and level, keyed ``"<letter>_<level>"`` (e.g. ``"C_hard"``)."""
    return json.loads((data_dir() / PRESETS_FILE).read_text(encoding="utf-8"))


def check_sets() -> list[str]:
    """Problems with the shipped files (empty list when every file matches its checksum)."""
    problems = []
    for level, sizes in TASK_SETS.items():
        for split, count in sizes.items():
            try:
                rows = load_rows(level, split)
            except (AssetNotFoundError, ChecksumMismatchError) as exc:
                problems.append(str(exc))
                continue
            if len(rows) != count:
                problems.append(f"{file_name(level, split)} has {len(rows)} rows, expected {count}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resd_envs.bouncingsim.tasks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--write", action="store_true", help="generate the task sets and write them under physics/"
    )
    parser.add_argument("--check", action="store_true", help="verify the shipped files against the manifest")
    parser.add_argument("--out", type=Path, default=None, help="write somewhere else than the shipped folder")
    args = parser.parse_args(argv)
    if args.write:
        m = write_sets(args.out)
        print(f"wrote {len(m['files'])} files in {m['generation_seconds']} s (pymunk {m['pymunk_version']})")
    if args.check or not args.write:
        problems = check_sets()
        print("\n".join(problems) if problems else "all shipped BouncingSim task sets match their checksums")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

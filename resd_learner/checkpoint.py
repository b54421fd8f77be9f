"""Save and restore everything a run needs to continue exactly where it stopped.

Layout of ``RUN_DIR/checkpoints/step_<N>/``:

- ``model/``: the student in transformers format (+ tokenizer), usable by ``resd-eval`` and vLLM;
- ``deepspeed/``: the engine state (weights, AdamW moments, LR schedule), written by DeepSpeed;
- ``state.pt``: torch-pickled extras: the EMA teacher, the RNG states (python, numpy, torch);
- ``state.json``: JSON extras: stream position, step counters, the context updater (playbook, solution
  buffer, its RNG).

Writes are atomic: everything goes into ``checkpoints/.tmp-step_<N>`` which is renamed to ``step_<N>``
only when complete, so a run killed mid-save leaves the previous checkpoint intact. Only the newest
``keep`` checkpoints are kept.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resd_learner import distributed

_STEP_DIR = re.compile(r"^step_(\d+)$")
DS_TAG = "state"

RUN_MARKERS = ("config.yaml", "metrics.jsonl", "checkpoints", "records")
"""Files whose presence makes a directory a resd-learn run directory."""


class RunDirExistsError(FileExistsError):
    """A new run would write into a directory that already holds a run (or other files)."""


def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds (part of) a resd-learn run: a config, metrics or checkpoints."""
    root = Path(run_dir)
    return any((root / name).exists() for name in RUN_MARKERS)


def check_new_run_dir(run_dir: str | Path, *, overwrite: bool = False) -> bool:
    """The read-only part of :func:`prepare_new_run_dir`: raise where it would refuse; return whether
    it would delete an existing run (``overwrite`` given and ``run_dir`` holds one)."""
    root = Path(run_dir)
    if root.exists() and not root.is_dir():
        raise RunDirExistsError(f"train.run_dir={root} is a file; choose a directory for the run's outputs")
    if not root.is_dir() or not any(root.iterdir()):
        return False
    if not holds_run(root):
        raise RunDirExistsError(f"train.run_dir={root} is not empty and holds no resd-learn run; choose an empty "
                                "or new directory (nothing was deleted)")
    if not overwrite:
        raise RunDirExistsError(f"train.run_dir={root} already holds a run; pass --overwrite to delete it and start "
                                f"again, or --resume {root} to continue it (nothing was deleted)")
    return True


def prepare_new_run_dir(run_dir: str | Path, *, overwrite: bool = False) -> None:
    """Make sure a *new* run may write into ``run_dir``; never deletes anything unless ``overwrite``.

    - missing or empty directory: fine (it is created);
    - a run directory: refused with :class:`RunDirExistsError` naming ``--overwrite`` and ``--resume``;
      with ``overwrite`` its whole content is deleted first;
    - a non-empty directory that is not a run directory: refused (even with ``overwrite``), so that a
      mistyped ``train.run_dir`` cannot delete unrelated files.
    """
    root = Path(run_dir)
    if not check_new_run_dir(root, overwrite=overwrite):
        root.mkdir(parents=True, exist_ok=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def finished_run(run_dir: str | Path) -> tuple[int, Path] | None:
    """``(global step, checkpoint)`` when the newest checkpoint of ``run_dir`` ends its stream, else None.

    Reads only ``state.json`` (no model is loaded).
    """
    checkpoint = latest_checkpoint(Path(run_dir) / "checkpoints")
    if checkpoint is None:
        return None
    state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    done, total = state.get("next_batch"), state.get("num_batches")
    if done is None or total is None or int(done) < int(total):
        return None
    return int(state.get("global_step", 0)), checkpoint


def capture_rng() -> dict[str, Any]:
    """The process's RNG states (python, numpy, torch CPU, and CUDA when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dirs(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` as (step, path), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / "state.json").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(root: str | Path) -> Path | None:
    dirs = checkpoint_dirs(root)
    return dirs[-1][1] if dirs else None


def save_checkpoint(root: str | Path, step: int, engine: Any, *, tokenizer: Any, torch_state: dict[str, Any],
                    json_state: dict[str, Any], keep: int = 1) -> Path:
    """Write checkpoint ``step`` atomically (collective: call on every rank) and prune old ones."""
    root = Path(root)
    final = root / f"step_{step}"
    tmp = root / f".tmp-step_{step}"
    if distributed.is_main():
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    distributed.barrier()
    engine.save_checkpoint(str(tmp / "deepspeed"), tag=DS_TAG)
    weights = distributed.full_state_dict(engine)
    if distributed.is_main():
        engine.module.save_pretrained(str(tmp / "model"), state_dict=weights)
        tokenizer.save_pretrained(str(tmp / "model"))
        torch.save(torch_state, tmp / "state.pt")
        (tmp / "state.json").write_text(json.dumps(json_state, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        tmp.replace(final)
        for _, old in checkpoint_dirs(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    distributed.barrier()
    return final


def load_checkpoint(path: str | Path, engine: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore the engine from ``path`` and return its (torch_state, json_state) extras."""
    path = Path(path)
    if not (path / "state.json").is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no state.json); pick another step_<N>")
    load_path, _ = engine.load_checkpoint(str(path / "deepspeed"), tag=DS_TAG, load_optimizer_states=True,
                                          load_lr_scheduler_states=True)
    if load_path is None:
        raise FileNotFoundError(f"DeepSpeed found no engine state under {path / 'deepspeed'}")
    torch_state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    json_state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    return torch_state, json_state

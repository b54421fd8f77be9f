"""Format warm start: a short supervised pass that teaches the answer format before RESD starts.

A 135M model rarely writes a readable answer on its own (SmolLM2-135M-Instruct names exactly one
candidate tag in 6-19% of its FinerMini replies and almost never uses ``<answer>``), so there is
little for any method to learn from. The warm start fine-tunes the model for a few steps on
``(prompt, target)`` pairs and saves the result; the run then starts from it, and it is the run's
**base model**: step-0 validation measures it, so every gain reported is the RESD loop's.

Targets (``warm_start.targets``):

* ``random_candidate`` (default): ``<answer>X</answer>`` with X a candidate tag drawn uniformly at
  random (seeded) from the task row's ``candidates``. Right only by chance (1 in 4 on FinerMini), so
  the pass teaches the format and nothing about which tag is right.
* ``reference``: the family's reference response (the gold answer): teaches the task too.

The prompts are the **last** ``num_examples`` rows of the training split, so they are disjoint from
the validation split and from the first ``env.num_train`` rows the run trains on (checked).

The result is cached under ``$RESD_CACHE/warm_start/<key>`` where the key hashes the base model
directory, the settings and the examples, so a second run reuses it; writing goes through a
temporary directory and a rename, so an interrupted pass leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

TARGETS = ("random_candidate", "reference")


@dataclass
class WarmStartConfig:
    """Settings of the format warm start (off unless ``enabled``)."""

    enabled: bool = False
    targets: Literal["random_candidate", "reference"] = "random_candidate"
    """random_candidate: format only (a random candidate tag); reference: the gold answer."""
    num_examples: int = 64
    """Prompts taken from the end of the training split."""
    epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0

    def problems(self) -> list[str]:
        out = []
        if self.targets not in TARGETS:
            out.append(f"warm_start.targets={self.targets!r}: use one of {', '.join(TARGETS)}")
        for name in ("num_examples", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                out.append(f"warm_start.{name}={getattr(self, name)}: use a value >= 1")
        if self.lr <= 0:
            out.append(f"warm_start.lr={self.lr}: use a positive learning rate")
        return out


def warm_start_examples(
    rows: list[dict[str, Any]], config: WarmStartConfig, *, reserved: int, family: Any = None
) -> list[tuple[str, str]]:
    """(prompt, target) pairs from the last ``num_examples`` rows of a training split.

    Args:
        rows: the training split's rows in order (each with ``prompt``; ``candidates`` for
            ``random_candidate``).
        reserved: how many leading rows the run trains on; the examples must not overlap them.
        family: the task family (its ``reference_response`` is used for ``targets="reference"``).

    Raises:
        ValueError: the split is too short to keep the examples apart from the training prompts, or a
            row lacks what the chosen targets need.
    """
    if reserved + config.num_examples > len(rows):
        raise ValueError(
            f"warm_start.num_examples={config.num_examples} plus env.num_train={reserved} exceeds the "
            f"{len(rows)} rows of the training split; the warm-start prompts must not be trained on again"
        )
    rng = random.Random(config.seed)
    pairs = []
    for row in rows[len(rows) - config.num_examples:]:
        if config.targets == "random_candidate":
            candidates = row.get("candidates")
            if not candidates:
                raise ValueError(
                    f"warm_start.targets=random_candidate needs a 'candidates' column (task {row.get('task_id')}); "
                    "use an env that lists candidates (resd/FinerMini-v0) or targets=reference"
                )
            target = f"<answer>{rng.choice(list(candidates))}</answer>"
        else:
            reference = family.reference_response(row) if family is not None else None
            if not reference:
                raise ValueError(f"warm_start.targets=reference: task {row.get('task_id')} has no reference response")
            target = str(reference)
        pairs.append((str(row["prompt"]), target))
    return pairs


def cache_key(model_dir: str | Path, config: WarmStartConfig, pairs: list[tuple[str, str]]) -> str:
    """Hex key naming one warm-started model: base model, settings and examples."""
    blob = json.dumps({"model": str(Path(model_dir).resolve()), "config": asdict(config), "pairs": pairs})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def train_format(
    model_dir: str | Path, pairs: list[tuple[str, str]], config: WarmStartConfig, out_dir: str | Path
) -> dict[str, float]:
    """Fine-tune ``model_dir`` on ``pairs`` (loss on the target tokens only) and save it to ``out_dir``.

    Returns ``{"steps", "loss_first", "loss_last", "seconds"}``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from resd_learner.rollout.base import render_prompt_ids

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.train()
    end_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    encoded = []
    for prompt, target in pairs:
        prompt_ids = render_prompt_ids(tokenizer, [{"role": "user", "content": prompt}])
        target_ids = list(tokenizer(target, add_special_tokens=False)["input_ids"]) + end_ids
        encoded.append((prompt_ids, target_ids))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    order = list(range(len(encoded)))
    rng = random.Random(config.seed)
    losses: list[float] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total = config.epochs * math.ceil(len(encoded) / config.batch_size)
    for _ in range(config.epochs):
        rng.shuffle(order)
        for first in range(0, len(order), config.batch_size):
            chunk = [encoded[i] for i in order[first:first + config.batch_size]]
            width = max(len(p) + len(t) for p, t in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (p, t) in enumerate(chunk):
                seq = p + t
                ids[row, :len(seq)] = torch.tensor(seq)
                labels[row, len(p):len(seq)] = torch.tensor(t)
                mask[row, :len(seq)] = 1
            loss = _target_loss(model, ids, mask, labels)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            print(f"warm start: step {len(losses)}/{total} loss {losses[-1]:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    model.config.use_cache = True
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return {
        "steps": float(len(losses)),
        "loss_first": losses[0] if losses else math.nan,
        "loss_last": losses[-1] if losses else math.nan,
        "seconds": time.perf_counter() - start,
    }


def _target_loss(model: Any, ids: Any, mask: Any, labels: Any) -> Any:
    """Mean next-token cross-entropy on the labelled positions only.

    The output head runs on those positions alone (not on every prompt token), which saves most of
    the memory and a fifth of the compute of a full ``model(labels=...)`` call on a 49k vocabulary.
    """
    import torch

    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    chosen = targets != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][chosen])
    return torch.nn.functional.cross_entropy(logits.float(), targets[chosen])


def run_base_model(config: Any) -> Path:
    """The base model of a run with learner ``config`` (a ``LearnerConfig``): ``model.path`` resolved,
    then warm-started as ``warm_start`` says. The same cached directory resd-learn trains from."""
    from resd_learner.models import resolve_model_path

    model_dir = resolve_model_path(config.model.path, config.model.cache_dir)
    return warm_started_model(model_dir, config.warm_start, env_id=config.env.id,
                              train_split=config.env.train_split, num_train=config.env.num_train,
                              family_kwargs=dict(config.env.kwargs), cache_dir=config.model.cache_dir)


def warm_started_model(
    model_dir: str | Path, config: WarmStartConfig, *, env_id: str, train_split: str, num_train: int | None,
    family_kwargs: dict[str, Any] | None = None, cache_dir: str | Path | None = None,
) -> Path:
    """The warm-started model directory for a run (trained once, then reused); ``model_dir`` when disabled.

    Only resd ids are supported (the rows come from :func:`resd_envs.load_tasks`). A file
    ``warm_start.json`` in the returned directory records the settings, examples count and losses.
    """
    if not config.enabled:
        return Path(model_dir)
    import resd_envs
    from resd_envs.registration import env_entry, load_object

    from resd_learner.models import cache_root

    rows = [dict(r) for r in resd_envs.load_tasks(env_id, train_split, **(family_kwargs or {}))]
    family = load_object(env_entry(env_id).family_entry_point)(**(family_kwargs or {}))
    reserved = len(rows) if num_train is None else num_train
    pairs = warm_start_examples(rows, config, reserved=reserved, family=family)
    out = cache_root(cache_dir) / "warm_start" / cache_key(model_dir, config, pairs)
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
    try:
        stats = train_format(model_dir, pairs, config, tmp)
        record = {"base_model": str(model_dir), "env_id": env_id, "split": train_split,
                  "rows": [len(rows) - len(pairs), len(rows)], "settings": asdict(config), **stats}
        (tmp / "warm_start.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

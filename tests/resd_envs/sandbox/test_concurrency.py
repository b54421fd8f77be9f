"""Rewards do not depend on how the caller batches: one process-wide bound on live sandboxes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import resd_envs
from resd_envs.sandbox import run_function_calls
from resd_envs.sandbox.slots import slot_count, slots_in_use

ENV_ID = "resd/BouncingSim-Easy-v0"
N = 24


def test_live_sandboxes_never_exceed_the_bound(tier: str) -> None:
    size = slot_count()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], slots_in_use()[0])
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=run_function_calls,
                                args=("import time\ndef f(t):\n    time.sleep(0.05)\n    return [t]\n", "f", [[1]]),
                                kwargs={"tier": tier}) for _ in range(3 * size + 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    sampler.join(2)
    assert 1 <= peak[0] <= size


def _gold_batch() -> tuple[list[str], list[str]]:
    from resd_envs.bouncingsim.solver import reference_response

    rows = resd_envs.load_tasks(ENV_ID, "test")
    rows = (rows * (N // len(rows) + 1))[:N]
    return [r["task_id"] for r in rows], [reference_response(r["scene"]) for r in rows]


def test_24_concurrent_averify_calls_score_like_one_verify() -> None:
    task_ids, responses = _gold_batch()
    batched = resd_envs.verify(ENV_ID, task_ids, responses)

    async def one_by_one() -> list:
        results = await asyncio.gather(*(resd_envs.averify(ENV_ID, [t], [r]) for t, r in zip(task_ids, responses)))
        return [result[0] for result in results]

    concurrent = asyncio.run(one_by_one())
    batched_pass = sum(r.passed for r in batched)
    concurrent_pass = sum(r.passed for r in concurrent)
    print(f"\nhonest gold programs: verify() {batched_pass}/{N} pass, {N} concurrent averify() "
          f"{concurrent_pass}/{N} pass (live-sandbox bound {slot_count()})")
    assert [r.passed for r in concurrent] == [r.passed for r in batched]
    assert [r.reward for r in concurrent] == [r.reward for r in batched]
    assert batched_pass == N, [r.error_type for r in batched if not r.passed]


@pytest.fixture(autouse=True)
def _no_rlimit_for_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESD_SANDBOX", raising=False)

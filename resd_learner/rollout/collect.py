"""Collect scored rollouts: generate for a batch of tasks, then score every response with the env."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resd_learner.rollout.base import GenerationBackend
from resd_learner.types import Sample, Task


def collect_samples(backend: GenerationBackend, source: Any, tasks: Sequence[Task], *, n: int, temperature: float,
                    top_p: float, max_tokens: int, seed: int, stop: Sequence[str] = ()) -> list[Sample]:
    """``n`` scored samples per task, grouped by task (task-major order, group_index 0..n-1).

    A generation whose prompt did not fit (``finish_reason="prompt_too_long"``) is still scored (as an
    empty response), so it is recorded with a zero reward instead of stopping the run.
    """
    generations = backend.generate([list(t.messages) for t in tasks], n=n, temperature=temperature, top_p=top_p,
                                   max_tokens=max_tokens, seed=seed,
                                   **({"stop": tuple(stop)} if stop else {}))
    samples = [
        Sample(task=task, group_index=j, prompt_ids=list(gen.prompt_ids), response_ids=list(gen.token_ids),
               response_text=gen.text, finish_reason=gen.finish_reason, logprobs=gen.logprobs)
        for task, gens in zip(tasks, generations) for j, gen in enumerate(gens)
    ]
    scores = source.score([s.task for s in samples], [s.response_text for s in samples])
    for sample, score in zip(samples, scores):
        sample.score = score
    return samples

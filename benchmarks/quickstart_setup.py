"""What the engine benchmarks share: the quickstart's model, validation prompts and validation sampling.

``generation_profile.py``, ``vllm_block_size.py`` and ``top_p_sampler.py`` all time the quickstart's
step-0 validation: FinerMini's first test-split prompts, the cached warm-started base model (made if
missing), ``eval.n`` completions of each at the eval sampling settings. :func:`load_validation` resolves
all of that once from a config and its overrides. Scripts run as ``python benchmarks/NAME.py`` find
this module beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resd_learner.config import load_config
from resd_learner.models import load_tokenizer
from resd_learner.precision import resolve_dtype
from resd_learner.rollout import make_backend
from resd_learner.rollout.collect import collect_samples
from resd_learner.task_sources import make_task_source
from resd_learner.warm_start import run_base_model


@dataclass
class QuickstartValidation:
    """A resolved config with its base model, tokenizer, task source and validation tasks."""

    config: Any
    dtype: str
    model_dir: Path
    tokenizer: Any
    source: Any
    tasks: list

    def backend(self, seed: int) -> Any:
        """A generation backend built from ``config.rollout`` (an in-process vLLM engine for the quickstart)."""
        return make_backend(self.config.rollout, self.model_dir, self.tokenizer, dtype=self.dtype, seed=seed)

    def sample(self, backend: Any, seed: int, tasks: list | None = None) -> list:
        """Scored samples of ``tasks`` (default: all validation tasks) at the eval sampling settings."""
        ev, rollout = self.config.eval, self.config.rollout
        return collect_samples(backend, self.source, self.tasks if tasks is None else tasks, n=ev.n,
                               temperature=ev.temperature, top_p=ev.top_p, max_tokens=ev.max_tokens or rollout.max_tokens,
                               seed=seed, stop=rollout.stop)


def load_validation(config_path: str, overrides: list[str], prompts: int) -> QuickstartValidation:
    """Resolve ``config_path`` with ``overrides``, its dtype, its base model (warm start included) and the
    first ``prompts`` tasks of its validation split."""
    config = load_config(config_path, overrides)
    dtype, _why = resolve_dtype(config.model.dtype)
    model_dir = run_base_model(config)
    source = make_task_source(config.env)
    return QuickstartValidation(config=config, dtype=dtype, model_dir=model_dir, tokenizer=load_tokenizer(model_dir),
                                source=source, tasks=source.tasks(config.env.val_split, prompts))

"""End to end: TRL's GRPOTrainer runs one step on the tiny offline model, scored by resd (CPU, ~30 s).

Skipped when TRL, datasets or the learner extra (torch, transformers) is missing. Nothing is
downloaded: the tiny Qwen3 and its tokenizer are built locally by ``resd_learner.models``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

trl = pytest.importorskip("trl")
pytest.importorskip("datasets")
models = pytest.importorskip("resd_learner.models")

from resd_envs.integrations.trl import (  # noqa: E402
    AsyncResdRewardFunction,
    ResdRewardFunction,
    environment_factory,
    task_dataset,
)

ENV = "resd/Manufactoria-Has-v0"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-qwen3")


def _trainer(tiny_dir: Path, tmp_path: Path, *, chat_template: str | None = None, **kwargs):
    from transformers import AutoModelForCausalLM

    tokenizer = models.load_tokenizer(tiny_dir)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=8, report_to="none", use_cpu=True, logging_steps=1, save_strategy="no", seed=0,
    )
    return trl.GRPOTrainer(model=model, args=args, processing_class=tokenizer, **kwargs)


def test_grpo_step_with_sync_and_async_reward(tiny_dir: Path, tmp_path: Path) -> None:
    train = task_dataset(ENV, "train", limit=2)
    sync_reward = ResdRewardFunction(ENV, name="resd_sync")
    async_reward = AsyncResdRewardFunction(ENV, name="resd_async", reward_mode="pass_rate")
    trainer = _trainer(tiny_dir, tmp_path, reward_funcs=[sync_reward, async_reward], train_dataset=train)
    trainer.train()

    logged = trainer.state.log_history[0]
    for name in ("resd_sync", "resd_async"):
        assert f"rewards/{name}/mean" in logged
        assert 0.0 <= logged[f"{name}/pass_rate"] <= 1.0
    # one scored result per completion of the step's generation batch, on the dataset's tasks
    completions = trainer.args.generation_batch_size
    for reward in (sync_reward, async_reward):
        assert len(reward.last_results) == completions
        assert {r.task_id for r in reward.last_results} <= set(train["task_id"])
        assert all(r.feedback for r in reward.last_results)
    # the feedback reached TRL's completions table
    assert len(trainer._logs["extra"]["resd_sync/feedback"]) == completions


def test_grpo_accepts_the_tool_environment(tiny_dir: Path, tmp_path: Path) -> None:
    qwen3 = (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")
    train = task_dataset(ENV, "train", limit=2)
    trainer = _trainer(tiny_dir, tmp_path, chat_template=qwen3, train_dataset=train,
                       environment_factory=environment_factory(ENV, max_attempts=2))
    assert [tool.__name__ for tool in trainer.tools] == ["submit"]
    assert trainer.reward_func_names == ["ResdToolEnvironment"]
    trainer.train()
    assert "rewards/ResdToolEnvironment/mean" in trainer.state.log_history[0]
    pool = trainer._environment_pool[None]
    assert {env._task_id for env in pool} <= set(train["task_id"])

"""Adapters from resd environments to other trainers and task libraries.

Each adapter is its own module, imported on demand, so ``import resd_envs`` stays light:

- :mod:`resd_envs.integrations.trl`: a reward function (sync and async) for TRL's ``GRPOTrainer``,
  a dataset helper, and an ``environment_factory`` class with a ``submit`` tool (extra ``trl``).
- :mod:`resd_envs.integrations.verl`: ``compute_score`` for verl's custom reward function, and
  rows in verl's dataset layout (no verl import needed).
- :mod:`resd_envs.integrations.reasoning_gym`: every reasoning-gym task as a gymnasium text env
  ``rg/<task>-v0`` with the resd env contract (extra ``reasoning-gym``).
- :mod:`resd_envs.integrations.common`: listing and scoring tasks the same way for resd ids and
  other text envs; the other adapters build on it.

The adapters accept resd ids (``resd/...``), ``rg/<task>-v0`` ids (registered on first use) and any
gymnasium id that follows the resd env contract (see :mod:`resd_envs.integrations.common`). None of
them imports torch.
"""

"""resd_envs: gymnasium environments for Reflection-Enhanced Self-Distillation.

Importing the package registers every id (idempotently)::

    import gymnasium, resd_envs
    env = gymnasium.make("resd/Manufactoria-Has-v0")
    # or, with no import: gymnasium.make("resd_envs:resd/Manufactoria-Has-v0")

For trainers that do not use gymnasium: :func:`load_tasks` and :func:`verify`.
This package never imports torch or ``resd_learner``.
"""

from resd_envs.api import averify, family, list_envs, load_tasks, make, make_vec, verify
from resd_envs.core.results import Evaluation, TestResult, VerifyResult
from resd_envs.errors import ResdEnvError
from resd_envs.registration import register_envs

__version__ = "0.1.0"

register_envs()

__all__ = [
    "Evaluation",
    "ResdEnvError",
    "TestResult",
    "VerifyResult",
    "averify",
    "family",
    "list_envs",
    "load_tasks",
    "make",
    "make_vec",
    "register_envs",
    "verify",
]

"""Shared machinery of every resd environment: result types, the task-family contract, the env class."""

from resd_envs.core.env import TaskEnv
from resd_envs.core.family import TaskFamily
from resd_envs.core.results import ERROR_TYPES, Evaluation, TestResult, VerifyResult

__all__ = ["ERROR_TYPES", "Evaluation", "TaskEnv", "TaskFamily", "TestResult", "VerifyResult"]

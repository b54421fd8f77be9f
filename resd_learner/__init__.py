"""resd_learner: the Reflection-Enhanced Self-Distillation (RESD) trainer and its baselines.

Importing the package itself loads nothing but this file. Its submodules import what they use at
module level: ``config`` (and so every module that reads a config) loads torch, ``trainer`` also
transformers and DeepSpeed, and vLLM is imported only when a vLLM generation backend is built.
Install the learner with ``pip install 'resd[learner]'`` (after ``pip install torch``).

Layout: ``task_sources`` (prompts, rewards, feedback from an env) → ``rollout`` (generation) →
``context`` (playbook, reflections, solution buffer) → ``batch`` (teacher sequences, packing) →
``teacher`` / ``loss`` → ``trainer`` (the loop); ``evaluate`` and ``report`` read runs.
"""

import time as _time

__version__ = "0.1.0"

STARTED_AT: float = _time.time()
"""Wall-clock time (``time.time()``) at which this package was first imported in this interpreter. The
run summary's wall time counts from here rather than from the process's creation: under
``bash -c "setup && resd-learn ..."`` bash execs its last command, so the process was created when the
shell started and its age would include the setup."""

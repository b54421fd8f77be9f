"""resd_learner: the Reflection-Enhanced Self-Distillation (RESD) trainer and its baselines.

Heavy dependencies (torch, transformers, deepspeed, vllm) are imported lazily by the modules that
need them; install them with ``pip install 'resd[learner]'`` (after ``pip install torch``).
"""

__version__ = "0.1.0"

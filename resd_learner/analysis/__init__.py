"""Analyses of a RESD model's learning signal.

- :mod:`resd_learner.analysis.teacher_signal`: per-token distillation loss of the same failed
  responses under the SDPO teacher context and under the RESD context (paper §4.3), with the tokens
  that carry the most loss mass. CLI: ``python -m resd_learner.analysis.teacher_signal``.
- :mod:`resd_learner.analysis.token_mass`: the pure statistics used there.
"""

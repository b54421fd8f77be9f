"""Seeds derived from the run seed: one function, used by every sampling call of the learner.

:func:`derive_seed` mixes integers (run seed, phase id, step, call index, request index) through
NumPy's ``SeedSequence`` into a 31-bit seed that is the same on every process and platform, so a
resumed run draws exactly the samples an uninterrupted run would.
"""

from __future__ import annotations

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers (each taken modulo 2**32); stable across processes and runs."""
    if not parts:
        raise ValueError("derive_seed needs at least one integer (e.g. the run seed)")
    mixed = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0]
    return int(mixed) & 0x7FFFFFFF

"""Console-script entry points for the learner commands, safe to run in an env-only install.

The wheel always installs ``resd-learn``, ``resd-eval`` and ``resd-report`` (a wheel cannot tie
scripts to an extra), but their modules need the ``learner`` extra. Each entry point here first checks
that the extra's packages import, and otherwise exits with status 2 and one line naming the install
command, instead of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable

# The distributions a learner command cannot start without (import name -> distribution name).
LEARNER_REQUIREMENTS: dict[str, str] = {
    "torch": "torch",
    "transformers": "transformers",
    "yaml": "pyyaml",
}
INSTALL_HINT = (
    "pip install torch==2.13.0 && pip install 'resd[learner]'  "
    "(CPU; on a GPU machine install your CUDA build of torch first)"
)


def missing_learner_packages() -> list[str]:
    """Distribution names of the learner extra's core packages that cannot be imported here."""
    return [dist for module, dist in LEARNER_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


def _run(command: str, target: str) -> int:
    """Run ``module:function`` after the dependency check; returns the process exit status."""
    missing = missing_learner_packages()
    if missing:
        print(
            f"{command}: needs the learner extra, which is not installed (missing: {', '.join(missing)}).\n"
            f"Install it with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    module_name, function_name = target.split(":")
    main: Callable[[], int | None] = getattr(importlib.import_module(module_name), function_name)
    status = main()
    return 0 if status is None else int(status)


def learn() -> int:
    """``resd-learn``."""
    return _run("resd-learn", "resd_learner.cli:main")


def evaluate() -> int:
    """``resd-eval``."""
    return _run("resd-eval", "resd_learner.evaluate:main")


def report() -> int:
    """``resd-report``."""
    return _run("resd-report", "resd_learner.report:main")

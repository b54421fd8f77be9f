"""The adapters stay light: importing them loads no torch, trainer or learner module."""

from __future__ import annotations

import subprocess
import sys


def test_adapters_import_without_torch_or_trainers() -> None:
    code = (
        "import sys\n"
        "import resd_envs.integrations.trl, resd_envs.integrations.verl, resd_envs.integrations.common\n"
        "try:\n"
        "    import resd_envs.integrations.reasoning_gym\n"
        "except ImportError:  # the reasoning-gym extra is not installed\n"
        "    pass\n"
        "heavy = ('torch', 'resd_learner', 'trl', 'verl', 'transformers', 'datasets')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.strip() == ""

"""``python -m resd_envs.fidelity ENV_ID ...`` (same as ``resd-envs fidelity``)."""

from resd_envs.fidelity.cli import main

raise SystemExit(main())

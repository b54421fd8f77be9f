"""``python -m resd_learner ...`` is ``resd-learn ...``."""

import sys

from resd_learner.cli import main

sys.exit(main())

"""`python -m scoring …` (see scoring/batch/cli.py)."""

import sys

from .batch.cli import main

sys.exit(main())

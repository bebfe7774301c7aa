"""`python -m scoring …` (see scoring/cli.py)."""

import sys

from .batch.cli import main

sys.exit(main())

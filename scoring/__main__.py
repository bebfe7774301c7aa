"""`python -m scoring …` (see scoring/cli/__init__.py)."""

import sys

from .cli import main

sys.exit(main())

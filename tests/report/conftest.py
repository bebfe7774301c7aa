"""The report tests' shared rows (tests/helpers/reports.py)."""

from __future__ import annotations

import pytest
from helpers.reports import sample_entries

from scoring.report import Entry


@pytest.fixture
def entries() -> list[Entry]:
    return sample_entries()

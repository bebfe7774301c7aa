"""What the tests share: fake servers, fixtures, the CLI as a subprocess, and the tiny
models' builders (`models/`)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root."""

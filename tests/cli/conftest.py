"""The command-line tests share the batch tests' fixtures: a folder of real images and a
scripted ComfyUI neighbour (tests/batch/conftest.py)."""

from batch.conftest import fake, folder, server

__all__ = ["fake", "folder", "server"]

"""Scoring folders from the command line (`python -m scoring`): the runner with its resume
cache, the session that keeps the report whole, folder watching, and keeping out of a
running ComfyUI's way."""

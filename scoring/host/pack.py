"""Where this pack is on disk, and what lies beside it."""

from __future__ import annotations

from pathlib import Path

PACK = Path(__file__).resolve().parents[2]
"""The pack's folder (custom_nodes/ComfyUI-Saiten in a ComfyUI install)."""

SAMPLES = PACK / "samples"
"""The embedded sample images (`python -m scoring demo`, Saiten Sample Images)."""


def comfyui_root() -> Path | None:
    """The ComfyUI this pack is installed in (<ComfyUI>/custom_nodes/<pack>), or None."""
    root = PACK.parents[1]
    return root if (root / "main.py").is_file() else None

"""Saiten's scoring engine: sources → score cards → ensemble verdicts.

Importable with no ComfyUI present; nothing here imports `comfy`, `folder_paths` or `server`.
"""

from .core.cards import AXES, ScoreCard, Sheet, Verdict, merge_sheets
from .core.rubric import Rubric

__all__ = ["AXES", "Rubric", "ScoreCard", "Sheet", "Verdict", "merge_sheets"]

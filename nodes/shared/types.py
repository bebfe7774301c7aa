"""The custom io types that flow between Saiten nodes."""

from comfy_api.latest import io

Scores = io.Custom("SAITEN_SCORES")
"""`scoring.Sheet`: every source's cards per image, aligned with the batch."""

Verdicts = io.Custom("SAITEN_VERDICTS")
"""`list[scoring.Verdict]`: the ensemble's result per image, aligned with the batch."""

Rubric = io.Custom("SAITEN_RUBRIC")
"""`scoring.Rubric`: the axes, anchors, language and guidance every VLM and the judge use."""

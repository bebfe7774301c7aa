"""The vocabulary every layer shares: score cards and verdicts, errors, images, the rubric,
and tolerant parsing of model answers."""

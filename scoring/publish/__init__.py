"""Ready to sell: what covers each region that must be obscured (`measure`), the stores'
mosaic rules and each image's publish verdict (`rules`), a compliant mosaic (`mosaic`) and
the regions drawn on a preview (`preview`). numpy and Pillow only."""

from .measure import Box, Cover, measure
from .mosaic import apply_mosaic
from .rules import (
    CUSTOM,
    NEEDS_WORK,
    PRESETS,
    PUBLISHABLE,
    PublishVerdict,
    Region,
    RegionCheck,
    Rule,
    judge,
    rule_for,
)

__all__ = ["CUSTOM", "NEEDS_WORK", "PRESETS", "PUBLISHABLE", "Box", "Cover", "PublishVerdict",
           "Region", "RegionCheck", "Rule", "apply_mosaic", "judge", "measure", "rule_for"]

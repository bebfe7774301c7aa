"""From cards to decisions: the aggregate (median / MAD / weights / confidence), calibration
against the user's ratings, and the filter's decision."""

"""From results to a verdict: summaries with intervals (summary.py), paired statistics (stats.py, pairs.py), the
decision (decide.py) and every sentence and table of it (explain.py)."""

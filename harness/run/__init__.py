"""One `harness compare` run: the plan (plan.py), the phases (prepare.py, execute.py, judging.py, in that order per
strategy, driven by compare.py), the one gateway for model calls (gateway.py, over cache.py), the run folder on disk
(folder.py), progress and the manifest of what it ran on."""

"""Helpers of the command line (harness/cli.py): CI gates and files (ci.py), the terminal summary (console.py),
`harness init` (init.py) and `harness tune` (tune.py)."""

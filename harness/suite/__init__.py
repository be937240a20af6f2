"""The suite: its schema (schema.py), loading and validation before any model call (load.py), data files and
splits (data.py), prompts (prompts.py), YAML locations for error messages (locations.py), and the helpers that cut
the example suites' data from the bigbench sdist (bigbench.py)."""

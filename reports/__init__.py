"""Reports read run folders (run.json, cases.jsonl) written by `harness compare`; they import nothing else from a run."""

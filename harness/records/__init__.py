"""The typed records of a run folder: what `harness compare` writes (run.json, cases.jsonl) and what the report,
CI gates and other tools read back. run.json is `RunRecord.model_dump`; its JSON Schema is `harness schema --run`.

- cases: one cases.jsonl line (`CaseResult`) with its scores and what the strategy did for it (`CaseMeta`).
- setup: what each strategy was given and what its setup cost (`StrategySetup`, `Given` and its kinds), the
  tuners' shared statistics (`TunerStats`), judge usage.
- summary: per-strategy aggregates (quality with intervals, latency, tokens, cost).
- decision: paired comparisons and the decision (winner by volume, fine-tuning against each alternative).
- run: the whole run.json (`RunRecord`, schema version 2) and the reader that upgrades version 1.
"""

"""Built-in strategies, loaded by name through harness.builtins: `zero_shot` and `few_shot` prompting, `rag`
(retrieval over a corpus, strategies/rag/) and `finetune` (a tuner trains, each checkpoint is scored on dev,
strategies/finetune/)."""

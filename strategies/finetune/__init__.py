"""Fine-tuning: the `finetune` strategy (strategy.py: train, score each checkpoint on dev, serve the best) and its
tuners: `local` (trl SFTTrainer + peft, in this process or with `accelerate launch`), `unsloth` (a GPU child process),
`autotrain` (AutoTrain Advanced in its own environment), `openai` and `azure` (provider fine-tuning jobs)."""

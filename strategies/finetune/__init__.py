"""Fine-tuning: the `finetune` strategy and its tuners (`local`: trl SFTTrainer + peft)."""

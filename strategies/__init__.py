"""Built-in strategies: zero-shot and few-shot prompting (RAG and fine-tuning join here)."""
